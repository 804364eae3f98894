"""The performance benchmarks of jobrunner: `make bench`, or `python -m bench`.

It starts its own mosquitto and simulated fleet, measures a floor (a bare paho + protobuf
script sending the same Kura requests to the same fleet) and jobrunner against it, and prints
one table (results in bench/results/; the README's Performance section keeps a run). Modules:

    run        the command: scenarios in order, the table
    scenarios  the scenarios, each a few rows of the table
    report     the rows, as text and as Markdown
    measure    child processes with their peak memory and CPU time, folder sizes, the broker
    fleet      a simulated fleet in a process of its own
    floor      the floor: bare paho + protobuf, at most 1,000 requests in flight
    manifests  jobs directories for the scenarios
    loopback   the runner without broker or devices: CPU per request, memory at 100,000
    compare    two revisions, interleaved on one broker and fleet: what a change bought
"""
