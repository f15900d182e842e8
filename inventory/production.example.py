# Copy to inventory/production.py and put your server's address here. The file name
# ("production") is the group whose data group_data/production.py holds.
production = [
    ("platform", {"ssh_hostname": "203.0.113.10"}),
]
