from platform_deploy import memory


def test_ram_table_matches_the_seed():
    rec, minimum = memory.profile_limits("recommended"), memory.profile_limits("minimum")
    assert (rec["postgres"], minimum["postgres"]) == (2048, 512)
    assert (rec["redis"], minimum["redis"]) == (512, 128)
    assert (rec["n8n"], minimum["n8n"]) == (1024, 512)
    assert (rec["directus"], minimum["directus"]) == (512, 256)
    chatwoot = ("chatwoot-web", "chatwoot-sidekiq")
    assert (sum(rec[s] for s in chatwoot), sum(minimum[s] for s in chatwoot)) == (2048, 1024)


def test_profiles_fit_the_seed_server_sizes():
    # An "8 GB" server reports about 7.6-7.8 GB, a "4 GB" one about 3.8 GB. The recommended
    # profile needs 7744 MB with its 768 MB queue worker (what a 200-message burst needs).
    assert memory.auto_profile(7800) == "recommended"
    assert memory.auto_profile(7700) == "minimum"
    assert memory.auto_profile(3750) == "minimum"
    assert memory.auto_profile(3400) is None


def test_budget_shows_each_service_and_total():
    text = memory.format_budget(memory.profile_limits("minimum"), 4000)
    assert "postgres" in text and "pangolin" in text
    total = memory.host_needs_mb(memory.profile_limits("minimum"))
    assert f"{total} MB of 4000 MB on the host" in text


def test_budget_counts_every_worker():
    limits = memory.profile_limits("minimum")
    text = memory.format_budget(limits, 8000, {"n8n-worker": 3})
    assert "n8n-worker x3" in text
    assert f"{memory.host_needs_mb(limits) + 2 * limits['n8n-worker']} MB of 8000 MB" in text
