#!/bin/sh
# challtestsrv answers every A query with HOST_IP (the sandbox host); Pebble asks it.
set -eu
pebble-challtestsrv -defaultIPv4 "$HOST_IP" -defaultIPv6 "" -dns01 :8053 -management :8055 \
    -http01 "" -https01 "" -tlsalpn01 "" -doh "" &
exec pebble -config /etc/pebble/config.json -dnsserver 127.0.0.1:8053
