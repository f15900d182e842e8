"""Package, service and file operations that cost one fact each and stay silent on a rerun.

pyinfra's apt.packages and systemd.service each gather their own facts per call
(dpkg -l, two systemctl calls per unit). Reading those facts once for all packages and
units, and emitting pyinfra's own operations only for what differs, keeps a no-op rerun
close to the cost of connecting. apt.update with a cache_time alone would also report a
change once the cache ages, so a rerun on a converged host would not be clean.
"""

import hashlib
import os
import secrets
import shlex
from io import StringIO
from pathlib import Path

from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined
from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.operations import apt, files, systemd


def installed_packages():
    return fact(DebPackages)


def reads(dirs):
    """The facts read here for the run (the packages; the directories the deploy writes into), for read_ahead."""
    return [(DebPackages, {}), (ManagedTree, {"dirs": sorted(set(dirs))})]


def ensure_packages(name, packages, installed):
    """Install what `installed` (a DebPackages fact) lacks; refresh the index only then."""
    missing = [p for p in packages if p not in installed]
    if missing:
        apt.update(name=f"{name}: refresh the package index", cache_time=3600)
        apt.packages(name=name, packages=missing, no_recommends=True)


def _unit(name):
    return name if "." in name else f"{name}.service"


class UnitStates(FactBase):
    """Whether each unit runs and is enabled, in one systemctl call, by pyinfra's own rules
    (SystemdStatus and SystemdEnabled, which would take one call each): {unit: (running, enabled)}."""

    def command(self, units):
        return (
            "systemctl show --all --property Id --property SubState --property UnitFileState "
            f"{' '.join(map(shlex.quote, units))}"
        )

    @staticmethod
    def default():
        return {}

    def process(self, output):
        states, unit = {}, None
        for line in output:
            key, _, value = line.strip().partition("=")
            if key == "Id":
                unit = value
                states[unit] = [False, False]
            elif unit and key == "SubState":
                states[unit][0] = value in SystemdStatus.state_values
            elif unit and key == "UnitFileState":
                states[unit][1] = value in SystemdEnabled.state_values
        return {unit: tuple(state) for unit, state in states.items()}


_unit_reads: dict[str, list[str]] = {}  # host name -> the units read ahead


def units_read(names):
    """The read of the units `names` (every unit a run may ensure), for read_ahead."""
    _unit_reads[host.name] = sorted({_unit(n) for n in names})
    return [(UnitStates, {"units": _unit_reads[host.name]})]


def ensure_units(units):
    """`units`: {name: (running, enabled)}; None leaves that side alone."""
    wanted = [_unit(u) for u in units]
    read = _unit_reads.get(host.name, [])
    states = fact(UnitStates, units=read) if set(wanted) <= set(read) else host.get_fact(UnitStates, units=wanted)
    for name, (want_running, want_enabled) in units.items():
        unit = _unit(name)
        running, enabled = states.get(unit, (False, False))
        if (want_running and not running) or (want_enabled and not enabled):
            systemd.service(
                name=f"{unit} running and enabled", service=unit, running=want_running, enabled=want_enabled
            )


# Files and directories: one read of every managed directory per run (ManagedTree), and
# pyinfra's own operation emitted only for a path that differs. pyinfra's files.* would
# read two or three facts per path, each an SSH round trip, on every run.


class ManagedTree(FactBase):
    """Kind, mode, owner, group and SHA-1 of each directory given and of what is directly in
    it (files under 1 MB are hashed): {path: (kind, mode, user, group, sha1 or None)}."""

    def command(self, dirs):
        quoted = " ".join(shlex.quote(d) for d in dirs)
        return (
            f"find {quoted} -maxdepth 1 \\( -type d -printf 'd %m %u %g %p\\n' \\) "
            "-o \\( -type f -printf 'f %m %u %g %p\\n' \\) "
            f"2>/dev/null; find {quoted} -maxdepth 1 -type f -size -1024k -exec sha1sum {{}} + 2>/dev/null | "
            "sed 's/^/sha1 /'; true"
        )

    @staticmethod
    def default():
        return {}

    def process(self, output):
        tree, sums = {}, {}
        for line in output:
            if line.startswith("sha1 "):
                digest, _, path = line[5:].partition("  ")
                sums[path] = digest
            elif line[:2] in ("d ", "f "):
                kind, mode, user, group, path = line.split(" ", 4)
                tree[path] = [kind, mode, user, group, None]
        for path, digest in sums.items():
            if path in tree:
                tree[path][4] = digest
        return {path: tuple(entry) for path, entry in tree.items()}


class Unchanged:
    """What a file operation returns when the host already has what it wants."""

    @staticmethod
    def did_change():
        return False


_scans: dict[str, tuple] = {}  # host name -> (directories read, ManagedTree)


def scan(dirs):
    """Read every managed directory once; the helpers below consult it."""
    dirs = sorted(set(dirs))
    _scans[host.name] = (set(dirs), fact(ManagedTree, dirs=dirs))


def entries(directory):
    """Names directly in a scanned directory, as the scan found them."""
    tree = _scans.get(host.name, (set(), {}))[1]
    return sorted(os.path.basename(path) for path in tree if os.path.dirname(path) == directory)


def _has(path, kind, mode=None, user=None, group=None, sha1=None):
    entry = _scans.get(host.name, (set(), {}))[1].get(path)
    return (
        bool(entry)
        and entry[0] == kind
        and (mode is None or entry[1] == str(mode))
        and (user is None or entry[2] == user)
        and (group is None or entry[3] == group)
        and (sha1 is None or entry[4] == sha1)
    )


def put(name, src, dest, mode=None, user=None, group=None, **kwargs):
    """files.put, when `dest` differs from `src` (a local path or a StringIO)."""
    data = src.getvalue().encode() if isinstance(src, StringIO) else Path(src).read_bytes()
    if _has(dest, "f", mode, user, group, hashlib.sha1(data).hexdigest()):
        return Unchanged()
    return files.put(name=name, src=src, dest=dest, mode=mode, user=user, group=group, **kwargs)


ROOT = Path(__file__).resolve().parents[1]
# pyinfra's jinja2 settings (files.template's), with compiled templates cached between runs
# (jinja2's bytecode cache, in a private temporary directory): compiling every template
# again would cost a no-op rerun a tenth of a second or more.
_JINJA = Environment(
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    loader=FileSystemLoader(ROOT),
    bytecode_cache=FileSystemBytecodeCache(),
)


def render(src, **data):
    """The template at `src` (a path in this repository) rendered as pyinfra renders it."""
    return _JINJA.get_template(Path(src).resolve().relative_to(ROOT).as_posix()).render(**data)


def template(name, src, dest, mode=None, user=None, group=None, create_remote_dir=True, **data):
    """files.template, rendered here as pyinfra renders it, when `dest` differs."""
    return put(
        name,
        StringIO(render(src, **data)),
        dest,
        mode=mode,
        user=user,
        group=group,
        create_remote_dir=create_remote_dir,
    )


def directory(name, path, mode=None, user=None, group=None):
    if _has(path, "d", mode, user, group):
        return Unchanged()
    return files.directory(name=name, path=path, mode=mode, user=user, group=group)


def file_present(name, path, mode=None, user=None, group=None):
    """An (empty if new) file with this mode and owner, content left alone."""
    if _has(path, "f", mode, user, group):
        return Unchanged()
    return files.file(name=name, path=path, mode=mode, user=user, group=group)


def absent(name, path):
    scanned, tree = _scans.get(host.name, (set(), {}))
    if os.path.dirname(path) in scanned and path not in tree:
        return Unchanged()
    return files.file(name=name, path=path, present=False)


# Facts read ahead: the slow reads of the host (docker exec and inspect, ufw's own Python) started
# together in one round trip at the start of a run, each answered from there when its layer asks
# (fact). On a rerun they would otherwise run one after the other.


class ContainerRead(FactBase):
    """A fact read by a shell script in a container (script()). The read ahead runs the scripts of one
    container in one docker exec: each exec costs more than the reads it carries."""

    def script(self) -> str:
        raise NotImplementedError

    def command(self, container):
        return f"docker exec {container} sh -c {shlex.quote(self.script())} 2>/dev/null; true"


class ReadAhead(FactBase):
    """The exit status and output of each command, all run at once: {index: (succeeded, lines)}."""

    def command(self, commands):
        started = " ".join(
            f"{{ ( {command} ) >$d/{i} 2>/dev/null; echo $? >$d/{i}.rc; }} &" for i, command in enumerate(commands)
        )
        # Each output ends with a newline, so that the next marker starts a line of its own.
        shown = "; ".join(
            f'echo "@read-ahead {i} $(cat $d/{i}.rc)"; cat $d/{i}; [ -z "$(tail -c 1 $d/{i})" ] || echo'
            for i in range(len(commands))
        )
        # The outputs (docker inspect shows the containers' environment) in memory, removed however
        # this ends; without a temporary directory nothing is read ahead and each fact reads the host.
        return (
            "d=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d) || exit 0; "
            f"trap 'rm -rf \"$d\"' EXIT HUP INT TERM; {started} wait; {shown}"
        )

    @staticmethod
    def default():
        return {}

    def process(self, output):
        results: dict[int, tuple[bool, list[str]]] = {}
        lines: list[str] = []
        for line in output:
            if line.startswith("@read-ahead "):
                _, index, status = line.split()
                lines = []
                results[int(index)] = (status == "0", lines)
            else:
                lines.append(line)
        return results


_ahead: dict[str, dict] = {}  # host name -> {fact key: (succeeded, lines)}


def _key(cls, kwargs):
    return cls.__name__, repr(sorted(kwargs.items()))


def _in_one_exec(container, scripts, marker):
    """One docker exec running `scripts` in turn, each output after a line `<marker> i` (a marker made for
    the run: no value read, such as a name an app's admin typed, can forge it)."""
    parts = "; ".join(f"printf '\\n{marker} {i}\\n'; ( {script} ) 2>/dev/null" for i, script in enumerate(scripts))
    return f"docker exec {container} sh -c {shlex.quote(parts)} 2>/dev/null; true"


def _parts(lines, marker):
    """The outputs of _in_one_exec: [lines of part 0, ...] (the newline before each marker taken off)."""
    parts: list[list[str]] = []
    for line in lines:
        if line == f"{marker} {len(parts)}":
            if parts and parts[-1][-1:] == [""]:
                parts[-1].pop()
            parts.append([])
        elif parts:
            parts[-1].append(line)
    if parts and parts[-1][-1:] == [""]:
        parts[-1].pop()
    return parts


def read_ahead(reads):
    """Runs the commands of the facts `reads` ([(fact class, kwargs)]) at once."""
    commands: list[str] = []
    where = []  # per read: (index of its command, index of its part in a container's exec or None)
    in_container: dict[str, list] = {}  # container -> [index of its command, [scripts]]
    for cls, kwargs in reads:
        if issubclass(cls, ContainerRead):
            container = kwargs["container"]
            if container not in in_container:
                in_container[container] = [len(commands), []]
                commands.append("")
            index, scripts = in_container[container]
            where.append((index, len(scripts)))
            scripts.append(cls().script())
        else:
            where.append((len(commands), None))
            commands.append(cls().command(**kwargs))
    marker = f"@part-{secrets.token_hex(8)}"
    for container, (index, scripts) in in_container.items():
        commands[index] = _in_one_exec(container, scripts, marker)
    results = host.get_fact(ReadAhead, commands=commands)
    answers = {}
    for (cls, kwargs), (index, part) in zip(reads, where, strict=True):
        succeeded, lines = results.get(index, (False, []))
        if part is not None:
            parts = _parts(lines, marker)
            succeeded, lines = succeeded and part < len(parts), parts[part] if part < len(parts) else []
        answers[_key(cls, kwargs)] = (succeeded, lines)
    _ahead[host.name] = answers


def fact(cls, **kwargs):
    """host.get_fact(cls, **kwargs), answered from the read ahead when it holds it (once: asked again,
    the host is read again). A command that failed there runs again the usual way."""
    return _answer(cls, kwargs, _ahead.get(host.name, {}).pop)


def peek(cls, **kwargs):
    """fact(cls, **kwargs), left for the layer that asks next: a check made before anything changes
    reads what that layer reads."""
    return _answer(cls, kwargs, _ahead.get(host.name, {}).get)


def _answer(cls, kwargs, take):
    succeeded, lines = take(_key(cls, kwargs), (False, []))
    if not succeeded:
        return host.get_fact(cls, **kwargs)
    read = cls()
    return read.process(lines) if lines else read.default()
