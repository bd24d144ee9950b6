"""Collect: file an LMS's download of submissions into nbgrader's ``submitted/`` layout.

What an instructor downloads, as a folder or as the zip itself:

* Canvas's "Download Submissions" zip: flat files named
  ``<lastfirst>[_LATE]_<canvas user id>_<submission id>_<file>``, where ``<file>`` is what the
  student uploaded, with ``-1``, ``-2`` added by Canvas to a re-upload of the same name;
* one folder per student (``downloads/alice/ps1.ipynb``);
* flat files that start with the student's name (``alice_ps1.ipynb``,
  ``alice_ps1 (1).ipynb``, the second copy a browser makes of the same download);
* anything else, with ``pattern``: a regular expression with the named groups
  ``student_id`` and ``file_id`` (and optionally ``user_id``, ``late``, ``timestamp``), as
  nbgrader's ``ZipCollectApp.named_regexp``.

Each becomes ``submitted/<student>/<ps>/<notebook>.ipynb`` with a ``timestamp.txt`` (the
file's modification time, from which nbgrader computes late penalties). Where a student left
several copies of a notebook, the newest by modification time is kept (then the highest copy
number) and the report line says which, and why. Every display name gives a valid student id
(:func:`course_pkg.grading.course.student_id`): nobody is skipped for their name. The Canvas
user id and the name as the LMS wrote it go to the gradebook's student record
(``lms_user_id``, ``last_name``), where ``course export --format canvas --match ID`` finds
them. A zip is hostile data: it is read member by member, never extracted by its own paths;
links, paths that climb out, encrypted members and members over the size caps are skipped.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from course_pkg.grading.course import Course, ensure_tools_on_path, student_id
from course_pkg.grading.untrusted import UnsafeFile, one_line, read_regular

MAX_BYTES = 50 * 2**20
"""A downloaded notebook larger than this is not collected."""
MAX_ZIP_MEMBERS = 20_000
MAX_ZIP_TOTAL = 4 * 2**30
"""The most a zip may hold, in members and in uncompressed bytes of the notebooks read."""

CANVAS_NAME = re.compile(r"^(?P<student_id>[^_/]+?)(?P<late>_LATE)?_(?P<user_id>[0-9]+)_"
                         r"(?P<submission_id>[0-9]+)_(?P<file_id>.+)$")
"""Canvas's "Download Submissions" file name (its test student is ``studenttest``)."""
COPY_SUFFIX = re.compile(r"^(?P<stem>.+?)(?:-(?P<dash>[0-9]+)| ?\((?P<paren>[0-9]+)\))$")
"""``ps1-2`` (Canvas's re-upload) or ``ps1 (1)`` (a browser's second download)."""


@dataclass
class Upload:
    """One downloaded file that may be a student's notebook."""

    label: str
    """Its name in the download (for messages)."""
    name: str
    """The student as the download names them (folder, file-name prefix, Canvas's lastfirst)."""
    file: str
    """The file as the student uploaded it (``ps1-1.ipynb``)."""
    mtime: float
    read: Callable[[], bytes]
    user_id: str | None = None
    late: bool = False

    def copy_number(self) -> tuple[str, int]:
        """(file stem without the copy suffix, copy number: 0 for the first)."""
        stem = self.file[:-len(".ipynb")] if self.file.endswith(".ipynb") else self.file
        found = COPY_SUFFIX.match(stem)
        if not found:
            return stem, 0
        return found.group("stem"), int(found.group("dash") or found.group("paren"))


def release_notebooks(course: Course, assignment: str) -> list[str]:
    """Names (without ``.ipynb``) of the released notebooks of ``assignment``."""
    folder = course.folder("release", assignment)
    names = sorted(p.stem for p in folder.glob("*.ipynb"))
    if not names:
        raise ValueError(f"{folder} has no notebook: run `course release {assignment}` first")
    return names


def compile_pattern(pattern: str | None) -> re.Pattern[str] | None:
    """``pattern`` compiled, checked to have the groups ``student_id`` and ``file_id``."""
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        raise ValueError(f"--pattern {pattern!r} is not a regular expression: {err}") from None
    missing = {"student_id", "file_id"} - set(compiled.groupindex)
    if missing:
        raise ValueError(f"--pattern needs the named groups (?P<student_id>...) and "
                         f"(?P<file_id>...); it lacks {', '.join(sorted(missing))}")
    return compiled


def collect(course: Course, assignment: str, downloads: Path,
            pattern: str | None = None) -> list[str]:
    """File every submission found in ``downloads`` (a folder or a zip); return one line per
    action taken (see the module doc)."""
    notebooks = release_notebooks(course, assignment)
    regexp = compile_pattern(pattern)
    lines: list[str] = []
    if downloads.is_file() and zipfile.is_zipfile(downloads):
        with zipfile.ZipFile(downloads) as archive:
            uploads = list(_from_zip(archive, regexp, notebooks, lines))
            return _file_all(course, assignment, notebooks, uploads, lines)
    if downloads.is_symlink() or not downloads.is_dir():
        raise ValueError(f"{downloads} is not a folder or a zip of downloaded submissions "
                         "(Canvas: Assignments > the assignment > Download Submissions)")
    uploads = list(_from_folder(downloads, regexp, notebooks, lines))
    return _file_all(course, assignment, notebooks, uploads, lines)


def _parse(name: str, regexp: re.Pattern[str] | None,
           notebooks: list[str]) -> tuple[str, str, str | None, bool] | None:
    """(student name, uploaded file, user id, late) of a flat file name, or None."""
    if regexp is not None:
        found = regexp.fullmatch(name) or regexp.match(name)
        if not found or not found.group("student_id") or not found.group("file_id"):
            return None
        groups = found.groupdict()
        return (groups["student_id"], groups["file_id"], groups.get("user_id"),
                bool(groups.get("late")))
    canvas = CANVAS_NAME.match(name)
    if canvas:
        return canvas["student_id"], canvas["file_id"], canvas["user_id"], bool(canvas["late"])
    stem = name[:-len(".ipynb")] if name.endswith(".ipynb") else name
    for notebook in sorted(notebooks, key=len, reverse=True):
        found = re.match(rf"^(.+?)[_-]({re.escape(notebook)}\b.*)$", stem)
        if found:
            return found.group(1), found.group(2) + ".ipynb", None, False
    return None


def _from_folder(downloads: Path, regexp: re.Pattern[str] | None, notebooks: list[str],
                 lines: list[str]) -> Iterator[Upload]:
    for entry in sorted(downloads.iterdir()):
        label = one_line(entry.name, 80)
        if entry.is_symlink():
            lines.append(f"{label}: skipped, a link (links are not followed)")
        elif entry.is_dir():
            files = [f for f in sorted(entry.rglob("*.ipynb")) if ".ipynb_checkpoints" not in
                     f.parts and not f.is_symlink() and f.is_file()
                     and not any(p.is_symlink() for p in f.relative_to(entry).parents
                                 if p != Path("."))]
            if not files:
                lines.append(f"{label}: skipped, no notebook in the folder")
            else:  # the notebooks nearest the top: alice/ps1.ipynb before alice/old/ps1.ipynb
                depth = min(len(f.relative_to(entry).parts) for f in files)
                files = [f for f in files if len(f.relative_to(entry).parts) == depth]
            for path in files:
                yield Upload(f"{entry.name}/{path.name}", entry.name, path.name,
                             path.lstat().st_mtime, _reader(path))
        elif entry.suffix == ".ipynb" and entry.is_file():
            parsed = _parse(entry.name, regexp, notebooks)
            if parsed is None:
                lines.append(f"{label}: skipped, the name is not "
                             + ("matched by --pattern" if regexp else
                                "<student>_<notebook>.ipynb or Canvas's <name>_<user id>_"
                                "<submission id>_<file>"))
                continue
            yield Upload(entry.name, parsed[0], parsed[1], entry.lstat().st_mtime,
                         _reader(entry), parsed[2], parsed[3])
        else:
            lines.append(f"{label}: skipped, not a notebook")


def _reader(path: Path) -> Callable[[], bytes]:
    return lambda: read_regular(path, MAX_BYTES)


def _from_zip(archive: zipfile.ZipFile, regexp: re.Pattern[str] | None, notebooks: list[str],
              lines: list[str]) -> Iterator[Upload]:
    """The notebooks of a zip, read safely (see the module doc)."""
    members = archive.infolist()
    if len(members) > MAX_ZIP_MEMBERS:
        raise ValueError(f"the zip has {len(members)} members, more than the "
                         f"{MAX_ZIP_MEMBERS} a class's download can hold: not collected")
    budget = [MAX_ZIP_TOTAL]
    for info in members:
        if info.is_dir():
            continue
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        label = one_line(info.filename, 80)
        if not parts or info.filename.startswith(("/", "\\")) or ".." in parts or any(
                ":" in p for p in parts[:1]) or len(parts) > 2:
            lines.append(f"{label}: skipped, an unsafe path in the zip")
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            lines.append(f"{label}: skipped, a link (links are not followed)")
            continue
        if not parts[-1].endswith(".ipynb") or "__MACOSX" in parts:
            lines.append(f"{label}: skipped, not a notebook")
            continue
        if info.flag_bits & 0x1:
            lines.append(f"{label}: skipped, encrypted")
            continue
        if info.file_size > MAX_BYTES:
            lines.append(f"{label}: skipped, {info.file_size} bytes, over the limit of "
                         f"{MAX_BYTES}")
            continue
        mtime = datetime(*info.date_time).timestamp()
        read = _zip_reader(archive, info, budget)
        if len(parts) == 2:  # a folder per student
            yield Upload(info.filename, parts[0], parts[1], mtime, read)
            continue
        parsed = _parse(parts[0], regexp, notebooks)
        if parsed is None:
            lines.append(f"{label}: skipped, the name is not "
                         + ("matched by --pattern" if regexp else
                            "Canvas's <name>_<user id>_<submission id>_<file> or "
                            "<student>_<notebook>.ipynb"))
            continue
        yield Upload(info.filename, parsed[0], parsed[1], mtime, read, parsed[2], parsed[3])


def _zip_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                budget: list[int]) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with archive.open(info) as member:
                data = member.read(MAX_BYTES + 1)
        except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as err:
            raise UnsafeFile(f"cannot be read from the zip ({err})") from None
        if len(data) > MAX_BYTES:
            raise UnsafeFile(f"unpacks to more than {MAX_BYTES} bytes (the size in the zip "
                             "was false)")
        budget[0] -= len(data)
        if budget[0] < 0:
            raise UnsafeFile(f"the zip unpacks to more than {MAX_ZIP_TOTAL} bytes in all")
        return data
    return read


def _notebook_for(upload: Upload, notebooks: list[str]) -> tuple[str | None, int, bool]:
    """(notebook, copy number, whether the file is named after it) of an upload."""
    stem, copy = upload.copy_number()
    if stem in notebooks:
        return stem, copy, True
    full = upload.file[:-len(".ipynb")] if upload.file.endswith(".ipynb") else upload.file
    if full in notebooks:
        return full, 0, True
    if len(notebooks) == 1 and upload.file.endswith(".ipynb"):
        return notebooks[0], copy, False
    return None, copy, False


def _file_all(course: Course, assignment: str, notebooks: list[str], uploads: list[Upload],
              lines: list[str]) -> list[str]:
    by_student: dict[tuple[str, str | None], dict[str, list[tuple[Upload, int, bool]]]] = {}
    for upload in uploads:
        notebook, copy, named = _notebook_for(upload, notebooks)
        if notebook is None:
            lines.append(f"{one_line(upload.label, 80)}: skipped, no notebook named "
                         f"{' or '.join(n + '.ipynb' for n in notebooks)}")
            continue
        key = (upload.name, upload.user_id)
        by_student.setdefault(key, {}).setdefault(notebook, []).append((upload, copy, named))
    ids = assign_ids(course, list(by_student))
    identities = {}
    for key in sorted(by_student, key=lambda k: ids[k]):
        student = ids[key]
        lines += _file_one(course, assignment, student, key[0], by_student[key])
        identities[student] = key
    _record_identities(course, identities)
    return lines


def assign_ids(course: Course | None,
               keys: list[tuple[str, str | None]]) -> dict[tuple[str, str | None], str]:
    """A distinct valid student id for each (name as downloaded, LMS user id or None).

    In this order: a name that is a valid id is that id; a Canvas user the gradebook knows
    keeps their id; any other name gets its slug (:func:`course_pkg.grading.course.student_id`),
    with the user id or a number added where it would meet another student: one of this
    download, or one of the gradebook with another Canvas user id, or (for a plain download)
    one whose recorded name is another. So ``José`` never lands on a classmate ``jose``, nor a
    forged ``hon_plain\n`` on ``hon_plain``. ``course`` None: an empty gradebook.
    """
    known = _gradebook_students(course)
    by_user = {uid: sid for sid, (uid, _) in known.items() if uid}
    ids: dict[tuple[str, str | None], str] = {}
    order = sorted(keys, key=lambda k: (student_id(k[0]) != k[0] or k[1] is not None,
                                        k[1] not in by_user, k[0], k[1] or ""))
    for name, user_id in order:
        if user_id is None and student_id(name) == name:
            ids[(name, user_id)] = name
            continue
        if user_id is not None and user_id in by_user:
            ids[(name, user_id)] = by_user[user_id]
            continue
        base = student_id(name)
        candidate, number = base, 1
        while candidate in ids.values() or _someone_else(known.get(candidate), name, user_id):
            number += 1
            candidate = f"{base}-{user_id}" if user_id and number == 2 else f"{base}-{number}"
        ids[(name, user_id)] = candidate
    return ids


def _someone_else(record: tuple[str | None, str | None] | None, name: str,
                  user_id: str | None) -> bool:
    """Whether the gradebook's student ``record`` (user id, name) is not this upload's."""
    if record is None:
        return False
    known_user, known_name = record
    if user_id is not None:
        return known_user is not None and known_user != user_id
    return known_name != name


def _gradebook_students(course: Course | None) -> dict[str, tuple[str | None, str | None]]:
    """Student id -> (LMS user id, name as recorded), of the students in the gradebook."""
    if course is None or not course.gradebook.exists():
        return {}
    from nbgrader.api import Gradebook

    ensure_tools_on_path()
    with Gradebook(course.db_url) as gb:
        return {s.id: (str(s.lms_user_id) if s.lms_user_id else None, s.last_name)
                for s in gb.students}


def _record_identities(course: Course,
                       identities: dict[str, tuple[str, str | None]]) -> None:
    """Write each student's LMS user id and name, as the download gave them, to the gradebook."""
    needed = {sid: key for sid, key in identities.items() if key[1] or key[0] != sid}
    if not needed or not course.gradebook.exists():
        return
    from nbgrader.api import Gradebook

    ensure_tools_on_path()
    with Gradebook(course.db_url) as gb:
        for sid, (name, user_id) in needed.items():
            values = {"last_name": name[:128]}
            if user_id:
                values["lms_user_id"] = user_id
            gb.update_or_create_student(sid, **values)


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f %Z")


def _file_one(course: Course, assignment: str, student: str, name: str,
              files: dict[str, list[tuple[Upload, int, bool]]]) -> list[str]:
    lines = []
    chosen: dict[str, bytes] = {}
    late = False
    latest = 0.0
    for notebook, found in sorted(files.items()):
        named = [f for f in found if f[2]]
        if named and len(named) < len(found):
            lines.append(f"{student}: ignored " + ", ".join(
                one_line(u.label, 80) for u, _, is_named in found if not is_named)
                + f": not named {notebook}.ipynb, and a file of that name is there")
        copies = sorted(named or found, key=lambda item: (item[0].mtime, item[1]))
        upload = copies[-1][0]
        if len(copies) > 1:
            others = ", ".join(f"{one_line(u.label, 80)} ({_stamp(u.mtime)})"
                               for u, _, _ in copies[:-1])
            why = ("the newest by modification time" if copies[-1][0].mtime > copies[-2][0].mtime
                   else "the highest copy number (same modification time)")
            lines.append(f"{student}: {len(copies)} copies of {notebook}.ipynb: kept "
                         f"{one_line(upload.label, 80)} ({_stamp(upload.mtime)}), {why}; set "
                         f"aside {others}")
        try:
            chosen[notebook] = upload.read()
        except UnsafeFile as err:
            lines.append(f"{student}: {notebook}.ipynb skipped: {one_line(str(err))}")
            continue
        if upload.file != f"{notebook}.ipynb" and len(copies) == 1 and \
                upload.copy_number()[0] != notebook:
            lines.append(f"{student}: filed {one_line(upload.file, 80)} as {notebook}.ipynb")
        late |= upload.late
        latest = max(latest, upload.mtime)
    if not chosen:
        return lines
    target = course.folder("submitted", assignment, student)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for notebook, data in chosen.items():
        (target / f"{notebook}.ipynb").write_bytes(data)
    (target / "timestamp.txt").write_text(_stamp(latest))
    said = f" ({one_line(name, 80)})" if name != student else ""
    note = (f", LATE (Canvas says so; timestamp {_stamp(latest)}, from which nbgrader "
            "applies the late penalty past the due date)") if late else ""
    lines.append(f"{student}{said}: collected {', '.join(sorted(chosen))}{note}")
    return lines
