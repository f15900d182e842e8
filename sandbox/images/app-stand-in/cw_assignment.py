"""The Chatwoot stand-in's assignment (see chatwoot_api.py): online inbox members, team members, round robin
(AutoAssignment::InboxRoundRobinService) and a new team's assignee (AssignmentHandler)."""


def online(st, account_id, user_id):
    """OnlineStatusTracker: the account user's availability is online (presence pings are not modelled)."""
    au = st.find("account_user", account_id=account_id, user_id=user_id)
    return bool(au) and au[0].get("availability", "offline") == "online"


def inbox_member_ids(st, inbox):
    return [m["user_id"] for m in st.find("inbox_member", inbox_id=inbox["id"])]


def team_member_ids(st, team_id):
    return {m["user_id"] for m in st.find("team_member", team_id=team_id)}


def round_robin(st, inbox, candidates):
    """AutoAssignment::InboxRoundRobinService: the first candidate in the inbox's queue, which then goes to its end."""
    members = inbox_member_ids(st, inbox)
    rr = next(iter(st.find("round_robin", inbox_id=inbox["id"])), None) or st.add(
        "round_robin", inbox_id=inbox["id"], queue=[]
    )
    queue = [u for u in rr["queue"] if u in members] + [u for u in members if u not in rr["queue"]]
    chosen = next((u for u in queue if u in candidates), None)
    if chosen is not None:
        queue.remove(chosen)
        queue.append(chosen)
    rr["queue"] = queue
    st.save("round_robin", rr)
    return chosen


def assignable(st, conv, inbox):
    """Online inbox members, limited to the conversation's team when it has one (none when the team has
    allow_auto_assign off): AutoAssignmentHandler and AutoAssignment::AssignmentService's team filter."""
    members = set(inbox_member_ids(st, inbox))
    if conv["team_id"]:
        team = st.get("team", conv["team_id"])
        members &= team_member_ids(st, team["id"]) if team and team["allow_auto_assign"] else set()
    return {u for u in members if online(st, conv["account_id"], u)}


def team_assignee(ctx, conv, team_id, changes):
    """AssignmentHandler#ensure_assignee_is_from_team (before_save, whatever the status): an assignee who is
    not in the new team is removed; then one of the team's online members gets it when the team auto-assigns."""
    team = team_id and ctx.st.get("team", team_id)
    if not team:
        return
    members = team_member_ids(ctx.st, team["id"])
    assignee = changes.get("assignee_id", conv["assignee_id"])
    if assignee and assignee not in members:
        changes["assignee_id"] = assignee = None
    if not assignee and team["allow_auto_assign"]:
        inbox = ctx.st.get("inbox", conv["inbox_id"])
        chosen = round_robin(
            ctx.st,
            inbox,
            {u for u in set(inbox_member_ids(ctx.st, inbox)) & members if online(ctx.st, conv["account_id"], u)},
        )
        if chosen is not None:
            changes["assignee_id"] = chosen
