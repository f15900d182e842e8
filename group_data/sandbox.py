# The local sandbox host (make sandbox): a Debian 13 systemd container on this machine.
domain = "sandbox.test"
acme_email = "ops@sandbox.test"
docker_source = "distro"
# The tests open many SSH connections in quick succession from one address; UFW's
# limit rule would refuse them. tests/e2e turns it on once and checks that it bites.
ssh_rate_limit = False
