"""The commands a simulated gateway knows, with plausible output.

Kura joins `command.command` and its arguments with spaces and runs the line in a shell, so
`df -h` works as one command string as well as `df` with argument `-h`. The simulated shell
splits the line into commands at `;`, `&&` and `||` and runs them from a table; anything
else exits 127 with the shell's "not found", as on a real gateway. `sleep N` takes N
simulated seconds (the device replies when it is over, or times out); everything else is
instant. `/opt/acme/agent/bin/agent-check` checks the installed ACME agent package, which
the example job `agent-upgrade-2.4` relies on.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from jobrunner.simulator.catalog import Package


@dataclass(frozen=True, slots=True)
class Shell:
    """Where a command runs."""

    hostname: str
    working_dir: str
    environment: Mapping[str, str]
    packages: Mapping[str, Package]
    uptime: float


@dataclass(slots=True)
class Result:
    """What a command line did."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    seconds: float = 0.0
    """Simulated run time (only `sleep` takes any)."""
    reboot: bool = False


_Program = Callable[[list[str], Shell], Result]
_AGENT = "com.acme.monitoring.agent"


_PLAIN = frozenset(";&|'\"\\$`")
"""Characters that need the shell lexer; a line without them is split on whitespace."""


def run(line: str, shell: Shell) -> Result:
    """Run a command line; `;`, `&&` and `||` chain commands as in sh."""
    if _PLAIN.isdisjoint(line):  # the common case, without shlex's cost
        words = line.split()
        return _one(words, shell) if words else Result()
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError as error:
        return Result(stderr=f"/bin/sh: 1: Syntax error: {error}\n", exit_code=2)
    total = Result()
    argv: list[str] = []
    skip = False
    for token in [*tokens, ";"]:
        if token not in (";", "&&", "||", "|", "&"):
            argv.append(token)
            continue
        if token == "|":
            return Result(stderr="/bin/sh: pipes are not simulated\n", exit_code=2)
        if argv and not skip:
            result = _one(argv, shell)
            total.stdout += result.stdout
            total.stderr += result.stderr
            total.exit_code = result.exit_code
            total.seconds += result.seconds
            total.reboot = total.reboot or result.reboot
        argv = []
        skip = (token == "&&" and total.exit_code != 0) or (token == "||" and total.exit_code == 0)
    return total


def _one(argv: list[str], shell: Shell) -> Result:
    program = _PROGRAMS.get(argv[0])
    if program is None:
        return Result(stderr=f"/bin/sh: 1: {argv[0]}: not found\n", exit_code=127)
    return program(argv[1:], shell)


def _echo(args: list[str], shell: Shell) -> Result:
    if args[:1] == ["-n"]:
        return Result(" ".join(args[1:]))
    return Result(" ".join(args) + "\n")


def _exit(args: list[str], shell: Shell) -> Result:
    code = int(args[0]) if args and args[0].isdigit() else 0
    return Result(exit_code=code % 256)


def _sleep(args: list[str], shell: Shell) -> Result:
    try:
        seconds = float(args[0].rstrip("s")) if args else -1.0
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        return Result(stderr=f"sleep: invalid time interval '{' '.join(args)}'\n", exit_code=1)
    return Result(seconds=seconds)


def _uname(args: list[str], shell: Shell) -> Result:
    parts = {
        "-s": "Linux",
        "-n": shell.hostname,
        "-r": "5.15.92-kura",
        "-v": "#1 SMP PREEMPT Tue Oct 1 10:00:00 UTC 2024",
        "-m": "armv7l",
    }
    if "-a" in args:
        return Result(" ".join([*parts.values(), "GNU/Linux"]) + "\n")
    chosen = [parts[a] for a in args if a in parts] or ["Linux"]
    return Result(" ".join(chosen) + "\n")


def _df(args: list[str], shell: Shell) -> Result:
    if "-h" in args:
        return Result(
            "Filesystem      Size  Used Avail Use% Mounted on\n"
            "/dev/mmcblk0p2   29G  6.1G   22G  23% /\n"
            "tmpfs           459M  1.2M  458M   1% /run\n"
            "/dev/mmcblk0p1  253M   51M  202M  21% /boot\n"
        )
    return Result(
        "Filesystem     1K-blocks    Used Available Use% Mounted on\n"
        "/dev/mmcblk0p2   30358348 6346020  22755412  22% /\n"
        "tmpfs              469796    1208    468588   1% /run\n"
        "/dev/mmcblk0p1     258095   51729    206367  21% /boot\n"
    )


def _free(args: list[str], shell: Shell) -> Result:
    if "-h" in args:
        row, swap = (
            "Mem:           918Mi       412Mi       201Mi",
            "Swap:           99Mi          0B",
        )
    elif "-m" in args:
        row, swap = (
            "Mem:             918         412         201",
            "Swap:             99           0",
        )
    else:
        row, swap = (
            "Mem:          939580      421980      205752",
            "Swap:         102396           0",
        )
    return Result(f"               total        used        free\n{row}\n{swap}\n")


def _uptime(args: list[str], shell: Shell) -> Result:
    minutes = int(shell.uptime // 60)
    clock = time.strftime("%H:%M:%S", time.gmtime())
    return Result(f" {clock} up {minutes} min,  0 users,  load average: 0.08, 0.11, 0.09\n")


def _cat(args: list[str], shell: Shell) -> Result:
    files = {
        "/etc/hostname": f"{shell.hostname}\n",
        "/etc/os-release": 'PRETTY_NAME="Kura Gateway OS 5.4"\nID=kura\nVERSION_ID="5.4"\n',
        "/proc/uptime": f"{shell.uptime:.2f} {shell.uptime * 1.7:.2f}\n",
    }
    result = Result()
    for name in args:
        if name in files:
            result.stdout += files[name]
        else:
            result.stderr += f"cat: {name}: No such file or directory\n"
            result.exit_code = 1
    return result


def _env(args: list[str], shell: Shell) -> Result:
    return Result("".join(f"{k}={v}\n" for k, v in shell.environment.items()))


def _agent_check(args: list[str], shell: Shell) -> Result:
    package = shell.packages.get(_AGENT)
    if package is None:
        return Result(stderr=f"agent-check: {_AGENT} is not installed\n", exit_code=3)
    if "--expect-version" in args:
        index = args.index("--expect-version") + 1
        expected = args[index] if index < len(args) else ""
        if package.version != expected:
            return Result(
                stderr=f"agent-check: expected agent {expected}, found {package.version}\n",
                exit_code=1,
            )
    return Result(f"agent {package.version} running, last report 12s ago\n")


def _agent_version(args: list[str], shell: Shell) -> Result:
    package = shell.packages.get(_AGENT)
    if package is None:
        return Result(stderr=f"agent-version: {_AGENT} is not installed\n", exit_code=3)
    return Result(f"{package.version}\n")


def _opcua_upgrade(args: list[str], shell: Shell) -> Result:
    """The OPC UA bridge upgrade of the rollout example: `--to VERSION`."""
    if "--to" not in args or args.index("--to") + 1 >= len(args):
        return Result(stderr="upgrade: usage: upgrade --to VERSION\n", exit_code=2)
    version = args[args.index("--to") + 1]
    return Result(f"opcua bridge upgraded to {version}; restarted in 2.1s\n")


def _ls(args: list[str], shell: Shell) -> Result:
    listing = {
        "/opt": "acme\neclipse\n",
        "/opt/acme": "agent\nopcua\n",
        "/opt/acme/agent/bin": "agent-check\nagent-version\n",
        "/opt/acme/opcua/bin": "upgrade\n",
        "/tmp": "",
    }
    paths = [a for a in args if not a.startswith("-")] or [shell.working_dir]
    result = Result()
    for path in paths:
        if path.rstrip("/") in listing:
            result.stdout += listing[path.rstrip("/")]
        else:
            result.stderr += f"ls: cannot access '{path}': No such file or directory\n"
            result.exit_code = 2
    return result


@dataclass(frozen=True)
class _Text:
    text: str = field(default="")

    def __call__(self, args: list[str], shell: Shell) -> Result:
        return Result(self.text)


_PROGRAMS: dict[str, _Program] = {
    "echo": _echo,
    "true": lambda args, shell: Result(),
    "false": lambda args, shell: Result(exit_code=1),
    "exit": _exit,
    "sleep": _sleep,
    "uname": _uname,
    "hostname": lambda args, shell: Result(f"{shell.hostname}\n"),
    "uptime": _uptime,
    "df": _df,
    "free": _free,
    "date": lambda args, shell: Result(time.strftime("%a %b %d %H:%M:%S UTC %Y\n", time.gmtime())),
    "whoami": _Text("kura\n"),
    "id": _Text("uid=1000(kura) gid=1000(kura) groups=1000(kura),20(dialout)\n"),
    "pwd": lambda args, shell: Result(f"{shell.working_dir}\n"),
    "env": _env,
    "printenv": _env,
    "cat": _cat,
    "ls": _ls,
    "reboot": lambda args, shell: Result(reboot=True),
    "/opt/acme/agent/bin/agent-check": _agent_check,
    "/opt/acme/agent/bin/agent-version": _agent_version,
    "/opt/acme/opcua/bin/upgrade": _opcua_upgrade,
}

COMMANDS: tuple[str, ...] = tuple(_PROGRAMS)
"""The programs the simulated shell knows (for --help and the docs)."""
