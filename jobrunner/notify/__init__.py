"""Notifications: CloudEvents posted to the URLs of the Notification manifests.

events    NotificationEvents: an engine observer that writes each event to the outbox
delivery  Notifier: the companion of `watch` that posts the outbox, at least once
"""
