#!/usr/bin/env python3
"""Builds the agent's one-file archive: python3 scripts/build_agent.py OUT.pyz

The archive is a zipapp (PEP 441): a `#!/usr/bin/env python3` line, then a zip holding a top-level
__main__.py that runs wattbench_agent.__main__.main(), and the package agent/wattbench_agent/ (its .py files
only, no __pycache__). `python3 OUT.pyz COMMAND ...` runs the agent; that file is what the extension uploads.

The same sources give the same bytes on every machine, so the archive's hash (the agent's install directory
on a host) changes only when the agent does: entries sorted by name, stored uncompressed (no dependence on
the zlib at hand), every timestamp 1980-01-01 00:00:00, every mode 0644 on a Unix host, no extra fields, no
comment. Python 3.8+, standard library only; run by `npm run build` (esbuild.mjs) and by the agent's tests.
"""

import io
import os
import sys
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "wattbench_agent"
SOURCE = os.path.join(REPO, "agent", PACKAGE)
SHEBANG = b"#!/usr/bin/env python3\n"
TOP_MAIN = b'''"""Runs the Wattbench agent from its archive: python3 wattbench_agent.pyz COMMAND ..."""

import sys

from wattbench_agent.__main__ import main

sys.exit(main())
'''
DATE_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say
MODE = 0o100644  # a regular file, rw-r--r--


def package_files(source: str = SOURCE):
    """[(name in the archive, path on disk)] of the package's .py files, sorted by name."""
    found = []
    for directory, subdirs, names in os.walk(source):
        subdirs[:] = [d for d in subdirs if d != "__pycache__" and not d.startswith(".")]
        for name in names:
            if name.endswith(".py") and not name.startswith("."):
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, os.path.dirname(source)).replace(os.sep, "/")
                found.append((relative, path))
    return sorted(found)


def entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=DATE_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3  # Unix, whatever builds it, so that the mode below means the same everywhere
    info.external_attr = MODE << 16
    return info


def build(out: str, source: str = SOURCE) -> bytes:
    """Writes the archive to `out` (atomically: readers see the old one or the new one) and returns it."""
    files = [("__main__.py", TOP_MAIN)]
    for name, path in package_files(source):
        with open(path, "rb") as f:
            files.append((name, f.read()))
    if not any(name == PACKAGE + "/__main__.py" for name, _ in files):
        raise SystemExit("build_agent: %s has no __main__.py" % source)
    for name, data in files:
        compile(data, name, "exec", dont_inherit=True)  # a syntax error fails the build, not a run on a host
    buffer = io.BytesIO()
    buffer.write(SHEBANG)
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in sorted(files):
            archive.writestr(entry(name), data)
    data = buffer.getvalue()
    directory = os.path.dirname(os.path.abspath(out))
    os.makedirs(directory, exist_ok=True)
    tmp = "%s.tmp-%d" % (out, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return data


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python3 scripts/build_agent.py OUT.pyz", file=sys.stderr)
        return 2
    build(args[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
