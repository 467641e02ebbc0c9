"""Local files a manifest names (SPEC "Local files"): a `path`, or a glob, relative to the
manifest's folder, expanded and checked before anything is sent.

A path named without a glob must be a file file search can take: it exists, is a regular file
(a link to one is followed), can be read, is not empty, is at most 512 MB, and has one of the
extensions file search takes. A glob (`*`, `?` or `[` in the text; `**` spans folders) is
expanded in sorted order; below its fixed prefix it skips names that start with `.` and never
follows a symbolic link; the files it meets that file search cannot take are skipped and
counted (one warning a row), and a glob that matches no file it can take is an error: a folder
that is not mounted must never look like an empty one.

Each problem is a message for `FILE:LINE: what; what to do` (PathProblem); the readers of the
manifest formats name the line.
"""

from __future__ import annotations

import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter

from wcmatch import glob

from runner.items import LocalFile
from runner.manifest.common import show

# What file search takes (SPEC), compared lower-cased.
SUPPORTED_EXTENSIONS = frozenset((
    "c", "cpp", "cs", "css", "doc", "docx", "go", "html", "java", "js", "json", "md", "pdf",
    "php", "pptx", "py", "rb", "sh", "tex", "ts", "txt"))
MAX_FILE_BYTES = 512 * 1024 * 1024  # file search's limit (the sandbox's --file-max-bytes too)
GLOB_CHARS = frozenset("*?[")
# wcmatch: `**` spans folders (never through a linked folder), names starting with "." are
# not matched by a wildcard, `{a,b}` and the like are plain characters (SPEC names only
# `*`, `?`, `[`), and only files are returned.
_GLOB_FLAGS = glob.GLOBSTAR | glob.NODIR

# Why a file a glob met was skipped, as the warning counts them.
UNSUPPORTED = "of an extension file search does not take"
EMPTY = "empty"
TOO_LARGE = "over 512 MB"
UNREADABLE = "unreadable"
NOT_REGULAR = "not a regular file"
LINKED = "a symbolic link"


class PathProblem(Exception):
    """A row's path is wrong: the message says what, and what to do."""


@dataclass
class Expansion:
    """The files a row names, in order, and (for a glob) what it skipped, by reason."""

    files: list[LocalFile]
    skipped: Counter[str] = field(default_factory=Counter)

    def skipped_text(self) -> str:
        """'3 files skipped: 2 of an extension file search does not take, 1 empty', or ""."""
        if not self.skipped:
            return ""
        total = sum(self.skipped.values())
        reasons = ", ".join(f"{count} {reason}" for reason, count in self.skipped.most_common())
        return f"{total} file{'s' if total != 1 else ''} skipped: {reasons}"


def is_glob(text: str) -> bool:
    return not GLOB_CHARS.isdisjoint(text)


def absolute(text: str, base_dir: str | None) -> str:
    """The path the text names: as it stands when absolute, else under `base_dir` (the
    manifest's folder). A manifest read from stdin (`base_dir` None) takes absolute paths
    only: cron's working directory is not the job's."""
    if not text:
        raise PathProblem("path is empty; name a file, or a glob such as docs/**/*.md")
    if "\0" in text:
        raise PathProblem(f"path {show(text)} holds a NUL character; name the file as it is")
    if os.path.isabs(text):
        return os.path.normpath(text)
    if base_dir is None:
        raise PathProblem(f"path {show(text)} is relative, and a manifest read from stdin has "
                          "no folder to be relative to; give absolute paths")
    return os.path.normpath(os.path.join(base_dir, text))


def expand(text: str, base_dir: str | None, *, unread: bool = False) -> Expansion:
    """The files a row's `path` names (see the module's rules); PathProblem if it is wrong.
    `unread`: a path named without a glob is taken as named, not looked at (size and mtime
    -1: unknown)."""
    path = absolute(text, base_dir)
    if not is_glob(text):
        if unread:
            return Expansion([LocalFile(path, -1, -1)])
        return Expansion([_named_file(text, path)])
    return _globbed(text, path)


def _named_file(text: str, path: str) -> LocalFile:
    """A file named without a glob: every check is an error (the name is spelled for the
    message only then: a manifest of 100,000 paths spells none)."""
    try:
        info = os.stat(path)  # a link is followed: the user named it
    except FileNotFoundError:
        raise PathProblem(f"path {show(text)} does not exist ({path}); check the name, or "
                          "the folder it is relative to (the manifest's)") from None
    except OSError as exc:
        raise PathProblem(f"path {show(text)} cannot be read ({exc.strerror}); check its "
                          "permissions") from None
    reason = _refusal(path, info)
    if reason is not None:
        raise PathProblem(f"path {show(text)} is {_said(reason, path, info)}; "
                          f"{_remedy(reason)}")
    return LocalFile(path, info.st_size, info.st_mtime_ns)


def _globbed(text: str, pattern: str) -> Expansion:
    root = _fixed_prefix(pattern)
    below = os.path.relpath(pattern, root)
    expansion = Expansion([])
    if os.path.isdir(root):
        # A pattern that names a hidden folder or file itself is wcmatch's to walk; any
        # other is walked here, a hidden or linked folder never entered (see _walked).
        explicit_dot = any(part.startswith(".") for part in below.split(os.sep))
        found = _wcmatched(root, below) if explicit_dot else _walked(root, below)
        for name, info in sorted(found, key=_NAME_OF):
            path = os.path.join(root, name)
            reason = (UNREADABLE if isinstance(info, OSError) else LINKED if info is None
                      else _refusal(path, info))
            if reason is not None:
                expansion.skipped[reason] += 1
                continue
            assert isinstance(info, os.stat_result)
            expansion.files.append(LocalFile(path, info.st_size, info.st_mtime_ns))
    if not expansion.files:
        where = "its folder is not there" if not os.path.isdir(root) else (
            expansion.skipped_text() or "no file matches it")
        raise PathProblem(f"glob {show(text)} matches no file file search can take ({where}: "
                          f"{root}); check the folder is there (and mounted) and the pattern")
    return expansion


# What a glob found below its root: (name relative to it, its lstat; None for a symbolic
# link, the OSError when it could not be read).
Found = list[tuple[str, "os.stat_result | OSError | None"]]
_NAME_OF = itemgetter(0)


def _wcmatched(root: str, below: str) -> Found:
    """The files wcmatch's glob finds (links below root reported as None)."""
    folders: dict[str, bool] = {}  # folder below root -> no link on the way to it
    found: Found = []
    for name in glob.glob(below, flags=_GLOB_FLAGS, root_dir=root, limit=0):
        try:
            found.append((name, _unlinked_stat(root, name, folders)))
        except OSError as exc:
            found.append((name, exc))
    return found


def _walked(root: str, below: str) -> Found:
    """The files below `root` that the pattern matches, found by one os.scandir walk (the
    rerun of a big folder is mostly this walk: wcmatch's own took twice as long): names
    starting with "." are passed over (a wildcard never matches them), a folder that is a
    link is never entered, and a link to a file the pattern matches is reported (skipped,
    counted).
    Matching is wcmatch's own pattern, as a regular expression."""
    matches = re.compile(glob.translate(below, flags=_GLOB_FLAGS)[0][0]).match
    depth = None if "**" in below else below.count(os.sep) + 1  # fixed depth: no deeper
    found: Found = []
    folders = [("", root, 1)]
    while folders:
        prefix, folder, level = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # a folder that cannot be listed holds nothing we can take
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            relative = prefix + name
            try:
                if entry.is_symlink():
                    # A link to a file is skipped and counted; one to a folder is a folder,
                    # which a glob of files does not list (wcmatch's NODIR).
                    if matches(relative) and not entry.is_dir():
                        found.append((relative, None))
                elif entry.is_dir(follow_symlinks=False):
                    if depth is None or level < depth:
                        folders.append((relative + os.sep, entry.path, level + 1))
                elif matches(relative):
                    found.append((relative, entry.stat(follow_symlinks=False)))
            except OSError as exc:
                found.append((relative, exc))
    return found


def _fixed_prefix(pattern: str) -> str:
    """The folders of the pattern before its first component with a glob character."""
    parts = pattern.split(os.sep)
    fixed: list[str] = []
    for part in parts[:-1]:
        if is_glob(part):
            break
        fixed.append(part)
    return os.sep.join(fixed) or os.sep


def _unlinked_stat(root: str, name: str, folders: dict[str, bool]) -> os.stat_result | None:
    """The file's stat, None if it or a folder on the way below `root` is a symbolic link
    (a glob never follows one). `folders`: what earlier files found of their folders (a
    tree of 100,000 files has a few hundred)."""
    folder, _, _ = name.rpartition(os.sep)
    if folder and not _unlinked_folder(root, folder, folders):
        return None
    info = os.lstat(os.path.join(root, name))
    return None if stat.S_ISLNK(info.st_mode) else info


def _unlinked_folder(root: str, folder: str, folders: dict[str, bool]) -> bool:
    known = folders.get(folder)
    if known is None:
        parent, _, _ = folder.rpartition(os.sep)
        known = folders[folder] = (not parent or _unlinked_folder(root, parent, folders)) and (
            not os.path.islink(os.path.join(root, folder)))
    return known


def _refusal(path: str, info: os.stat_result) -> str | None:
    """Why file search cannot take the file, or None."""
    if not stat.S_ISREG(info.st_mode):
        return NOT_REGULAR
    extension = os.path.splitext(path)[1][1:].lower()
    if extension not in SUPPORTED_EXTENSIONS:
        return UNSUPPORTED
    if info.st_size == 0:
        return EMPTY
    if info.st_size > MAX_FILE_BYTES:
        return TOO_LARGE
    if not _readable(info) and not os.access(path, os.R_OK):
        return UNREADABLE
    return None


_EUID = os.geteuid() if hasattr(os, "geteuid") else -1
_GROUPS = frozenset(os.getgroups()) | {os.getegid()} if hasattr(os, "getegid") else frozenset()


def _readable(info: os.stat_result) -> bool:
    """Whether the mode bits let this process read the file, as os.access would answer but
    without its system call for every file of a big folder. Where they say no, os.access
    decides (an ACL may still allow it); a file an ACL refuses despite its bits fails its
    upload as unreadable instead."""
    if _EUID == 0:
        return True
    if info.st_uid == _EUID:
        return bool(info.st_mode & stat.S_IRUSR)
    if info.st_gid in _GROUPS:
        return bool(info.st_mode & stat.S_IRGRP)
    return bool(info.st_mode & stat.S_IROTH)


def _said(reason: str, path: str, info: os.stat_result) -> str:
    if reason == UNSUPPORTED:
        extension = os.path.splitext(path)[1]
        return (f"a {extension} file, which file search does not take" if extension
                else "a file without an extension, which file search does not take")
    if reason == TOO_LARGE:
        return f"{info.st_size / 1_048_576:,.0f} MB, over file search's 512 MB"
    if reason == NOT_REGULAR:
        return "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
    return reason


def _remedy(reason: str) -> str:
    return {
        UNSUPPORTED: "convert it to one of " + " ".join(sorted(SUPPORTED_EXTENSIONS))
                     + ", or leave it out",
        EMPTY: "leave it out: an empty file has nothing to search",
        TOO_LARGE: "split it, or leave it out",
        NOT_REGULAR: "name a file, or a glob such as folder/**/*.md for what is in a folder",
        UNREADABLE: "give the user that runs the job permission to read it",
    }[reason]
