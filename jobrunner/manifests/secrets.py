"""Secret-bearing properties (passwords, credentials) of step definitions."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

Secret = Annotated[str, Field(json_schema_extra={"writeOnly": True})]
"""A value that must never be printed: logs, status and plan output show it masked."""
