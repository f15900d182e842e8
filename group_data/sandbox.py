# The local sandbox host (make sandbox): a Debian 13 systemd container on this machine.
domain = "sandbox.test"
acme_email = "ops@sandbox.test"
docker_source = "distro"
