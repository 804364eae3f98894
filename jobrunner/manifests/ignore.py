"""`.jobrunnerignore`: the files of a jobs directory that are not manifests (gitignore's
syntax, read by pathspec, the library behind many tools that honour .gitignore).

It sits at the root of a jobs directory given to the loader; its patterns are relative to
that root, as a .gitignore's are: `drafts/`, `*.example.yaml`, `!keep.example.yaml`.
"""

from __future__ import annotations

from pathlib import Path

from pathspec import GitIgnoreSpec

IGNORE_FILE = ".jobrunnerignore"


class Ignored:
    """The patterns of one jobs directory's `.jobrunnerignore` (none: nothing is ignored)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problem: str | None = None
        """Why the file could not be used (every file is then read, as without it)."""
        self._spec: GitIgnoreSpec | None = None
        path = root / IGNORE_FILE
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as error:
            self.problem = f"cannot be read ({error}); every file is read as a manifest"
            return
        try:
            self._spec = GitIgnoreSpec.from_lines(lines)
        except ValueError:  # pathspec's pattern error, whatever its release: which line?
            self.problem = _first_bad(lines)

    def folder(self, path: Path) -> bool:
        """Whether a folder under the root is ignored (nothing in it is read)."""
        return self._spec is not None and self._spec.match_file(f"{self._relative(path)}/")

    def file(self, path: Path) -> bool:
        """Whether a file under the root is ignored."""
        return self._spec is not None and self._spec.match_file(self._relative(path))

    def _relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()


def _first_bad(lines: list[str]) -> str:
    """What is wrong with the first line that is not a pattern (every file is then read)."""
    for number, line in enumerate(lines, 1):
        try:
            GitIgnoreSpec.from_lines([line])
        except ValueError as error:
            return (
                f"line {number}: {line!r} is not a gitignore pattern ({error}); every file is"
                " read as a manifest"
            )
    return "its patterns are not valid together; every file is read as a manifest"
