"""What the deploy and the audit read back of point-in-time recovery (pitr.py) in PostgreSQL's container:
pgBackRest's stanza, the WAL archive's freshness and continuity, the last full backup's age."""

import json
import re

from . import converge

STANZA = "main"
REPO_IN_CONTAINER = "/var/lib/pgbackrest"  # a repository on the host, mounted
MAX_ARCHIVE_AGE_S = 300
MAX_FULL_AGE_DAYS = 8
WAL_NAME = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})")
WAL_FILE = re.compile(r"[0-9A-F]{24}")  # a segment (not a .history, .partial or .backup file)


_PGBACKREST = f"setpriv --reuid=postgres --regid=postgres --clear-groups pgbackrest --stanza={STANZA}"
# Read through pgBackRest (`repo-ls`), so that a bucket is read like a directory: the current archive's
# directories (one per 4 GB of WAL of a timeline); the newest archived file with its time, from the last of them;
# whether the WAL file PostgreSQL last handed over ($handed) is there; and the WAL archived since the last good
# backup began ($start, its first WAL file: backups are listed oldest first) on PostgreSQL's current timeline
# ($tl), as ranges of positions (16 MB segments) present, with where that timeline began (from its history file
# in pg_wal), so that what an abandoned timeline archived cannot hide a hole. A hole is WAL pgBackRest dropped
# past archive-push-queue-max while the repository could not take it.
_REPOSITORY = (
    f'pb="{_PGBACKREST} --log-level-console=off --log-level-stderr=off"; '
    """aid=$(printf '%s' "$info" | grep -o '"id":"[0-9]*-[0-9]*"' | tail -n 1 | cut -d'"' -f4); """
    """start=$(printf '%s' "$info" | grep -o '"start":"[0-9A-F]\\{24\\}"' | tail -n 1 | cut -d'"' -f4); """
    f'[ -n "$aid" ] && {{ arch=archive/{STANZA}/$aid; '
    'dirs=$($pb repo-ls "$arch" --filter=\'^[0-9A-F]{16}$\'); last=$(echo "$dirs" | tail -n 1); '
    # The last directory's WAL files, "<time> <name>", listed once: most reads below need no other.
    '[ -n "$last" ] && files=$($pb repo-ls --output=json "$arch/$last" | '
    """sed 's/},"/}\\n"/g' | sed -n 's/^{\\{0,1\\}"\\([0-9A-F]\\{24\\}-[^"]*\\)":{"type":"file","size":[0-9]*,"""
    """"time":\\([0-9]*\\)}.*/\\2 \\1/p'); """
    'ls_dir() { if [ "$1" = "$last" ]; then echo "$files" | cut -d " " -f 2; else $pb repo-ls "$arch/$1"; fi; }; '
    '[ -n "$files" ] && echo "$files" | sort -n | tail -n 1 | sed "s/^/archived /"; '
    '[ -n "$handed" ] && ls_dir "$(echo "$handed" | cut -c 1-16)" | grep -q "^$handed-" && echo handed-in-repository; '
    '[ -n "$start" ] && [ -n "$tl" ] && { '
    'awk \'NF { last = $2 } END { if (last != "") print "timeline-start " last }\' '
    '"/var/lib/postgresql/data/pg_wal/$tl.history" 2>/dev/null; '
    'for d in $(echo "$dirs" | awk -v tl="$tl" -v s="$(echo "$start" | cut -c 9-16)" '
    "'substr($0, 1, 8) == tl && substr($0, 9, 8) >= s'); do "
    'ls_dir "$d"; done | grep "^$tl[0-9A-F]\\{16\\}-" | awk \''
    "function hex(s, i, n) { n = 0; for (i = 1; i <= 8; i++) "
    'n = n * 16 + index("0123456789ABCDEF", substr(s, i, 1)) - 1; return n } '
    "{ print hex(substr($0, 9, 8)) * 256 + hex(substr($0, 17, 8)) }' | sort -n -u | awk '"
    'NR == 1 { a = $1 } NR > 1 && $1 != b + 1 { print "wal-range " a " " b; a = $1 } { b = $1 } '
    'END { if (NR) print "wal-range " a " " b }\'; }; }'
)


class PitrState(converge.ContainerRead):
    """pgBackRest's view of the stanza (`info`), PostgreSQL's current WAL file, the newest WAL file in the
    repository with its time, the WAL missing since the newest backup began; `now`."""

    def script(self):
        return (
            f"info=$({_PGBACKREST} info --output=json 2>/dev/null | tr -d '\\n'); "
            "printf 'info %s\\n' \"$info\"; "
            "current=$(psql -U postgres -tAc 'select pg_walfile_name(pg_current_wal_lsn()), "
            "coalesce(last_failed_time > last_archived_time, last_failed_time is not null), "
            "last_archived_wal from pg_stat_archiver' 2>/dev/null); "
            'echo "current $current"; tl=$(echo "$current" | cut -c 1-8); handed=${current##*|}; '
            'echo "now $(date +%s)"; ' + _REPOSITORY
        )

    @staticmethod
    def default():
        return {
            "info": None,
            "current": None,
            "failing": False,
            "handed_over": None,
            "archived": None,
            "archived_at": 0.0,
            "now": 0,
            "handed_in_repository": False,
            "timeline_start": None,
            "wal_ranges": [],
        }

    def process(self, output):
        state = self.default()
        for line in output:
            kind, _, rest = line.partition(" ")
            if kind == "info" and rest.strip():
                try:
                    state["info"] = json.loads(rest)[0]
                except (ValueError, IndexError, KeyError):
                    state["info"] = None
            elif kind == "current" and rest.strip():
                state["current"], failing, state["handed_over"] = (rest.strip().split("|") + ["", ""])[:3]
                state["failing"] = failing == "t"
            elif kind == "archived" and re.fullmatch(r"\d+ [0-9A-F]{24}\S*", rest.strip()):
                when, _, name = rest.strip().partition(" ")
                state["archived"], state["archived_at"] = name[:24], float(when)
            elif kind == "now" and rest.strip().isdigit():
                state["now"] = int(rest)
            elif kind == "handed-in-repository":
                state["handed_in_repository"] = True
            elif kind == "timeline-start" and re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", rest.strip()):
                high, low = rest.strip().split("/")
                state["timeline_start"] = ((int(high, 16) << 32) | int(low, 16)) >> 24
            elif kind == "wal-range" and re.fullmatch(r"\d+ \d+", rest.strip()):
                first, last = rest.split()
                state["wal_ranges"].append((int(first), int(last)))
        return state


def segment(name):
    """A WAL file's position, timeline aside (16 MB segments)."""
    match = WAL_NAME.match(name or "")
    return int(match[2], 16) * 0x100 + int(match[3], 16) if match else None


def backups(state):
    """The backups of the current database, oldest first (after a major upgrade, the older ones cannot restore it)."""
    info = state["info"] or {}
    current = max((db["id"] for db in info.get("db", [])), default=None)
    return [b for b in info.get("backup", []) if b.get("database", {}).get("id") == current]


def full_backups(state):
    return [b for b in backups(state) if b.get("type") == "full"]


def archive_gap(state):
    """Where WAL starts missing from the archive since the last good backup of the current database began, on
    the current timeline ("" if nowhere): a restore stops there."""
    made = backups(state)
    start = segment(made[-1].get("archive", {}).get("start")) if made else None
    ranges = sorted(state["wal_ranges"])
    if start is None or not ranges:
        return ""
    expected = max(start, state["timeline_start"] or 0)  # before the timeline began: its parents' WAL
    for first, last in ranges:
        if last < expected:
            continue
        if first > expected:
            lsn = expected * 0x1000000
            return f"WAL from {lsn >> 32:X}/{lsn & 0xFFFFFFFF:08X} missing"
        expected = last + 1
    return ""


def drift(state):
    """{what: how it differs}: the stanza, the WAL archive's freshness, the last full backup's age."""
    found = {}
    status = ((state["info"] or {}).get("status") or {}).get("message")
    if status != "ok":
        found["stanza"] = f"pgBackRest's stanza {STANZA!r} is not valid: {status or 'no stanza (pgbackrest info)'}"
    behind = (segment(state["current"]) or 0) - (segment(state["archived"]) or 0)
    age = state["now"] - state["archived_at"]
    # The last push failed, or WAL not yet archived while the newest archived file is old: the archive stopped.
    if state["failing"]:
        found["archive"] = (
            "the WAL archive is failing: PostgreSQL's last archive_command failed (pg_stat_archiver): is the "
            "repository (pitr_repo_dir, or the bucket) full, not writable or unreachable? The PostgreSQL container's "
            "log says why"
        )
    elif WAL_FILE.fullmatch(state["handed_over"] or "") and not state["handed_in_repository"]:
        # pgBackRest told PostgreSQL a WAL file was archived that the repository does not have: it dropped it.
        found["archive"] = (
            f"the WAL archive is dropping WAL: PostgreSQL handed over {state['handed_over']}, the newest in the "
            f"repository is {state['archived'] or 'none'}: past pitr_queue_max_mb pgBackRest drops what the "
            "repository (pitr_repo_dir, or the bucket) cannot take: is it full, not writable or unreachable?"
        )
    elif state["current"] and (not state["archived"] or (behind > 1 and age > MAX_ARCHIVE_AGE_S)):
        found["archive"] = (
            f"the WAL archive is behind: PostgreSQL writes {state['current']}, the newest archived is "
            f"{state['archived'] or 'none'}"
            + (f", {age / 60:.0f} minutes old" if state["archived"] else "")
            + " (docs/operations.md: Point-in-time recovery)"
        )
    gap = archive_gap(state)
    if gap:
        found["gap"] = (
            f"the WAL archive has a gap after the newest backup ({gap}: WAL dropped while the repository could "
            "not take it, past pitr_queue_max_mb): no moment after it can be restored until the next backup, "
            "which a deploy takes"
        )
    fulls = full_backups(state)
    newest = max((b["timestamp"]["stop"] for b in fulls), default=0)
    if not fulls:
        found["full"] = "pgBackRest has no full backup"
    elif state["now"] - newest > MAX_FULL_AGE_DAYS * 86400:
        found["full"] = f"the last full pgBackRest backup is older than {MAX_FULL_AGE_DAYS} days"
    return found
