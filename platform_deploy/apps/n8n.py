"""n8n: its settings (the workflows come with the application layer)."""

from ..model import Section, setting


class Settings(Section):
    timezone: str = setting("UTC", doc='Time zone of n8n\'s schedules, a tz database name, e.g. "America/Guyana".',
                            problem="not a time zone name", pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$",
                            fix='use a tz database name, e.g. "America/Guyana" or "UTC"')
    ai_replies: bool = setting(False, doc="True: n8n gets PLATFORM_CLAUDE_API_KEY as ANTHROPIC_API_KEY.",
                               problem="not a boolean", fix="set ai_replies = True or False")
    n8n_workers: int = setting(
        1, doc="Queue-mode workers (n8n-worker containers) that run the executions, on Redis database 1; 0: regular "
               "mode, the main process runs them. n8n's share of the RAM table is the main process; each worker "
               "has a limit of its own beside the table (memory_limits_mb['n8n-worker']).", problem="not a worker count",
        fix="set n8n_workers to a whole number from 0 to 16", ge=0, le=16)
