#!/bin/sh
# polroutd render: nmcli commands for NetworkManager
#
# A STATIC SNAPSHOT of polroutd's desired state, generated at 2024-05-01T12:00:00+00:00
# from the current kernel state and the configuration
# /etc/polroutd/polroutd.toml.
# It does NOT follow DHCP renewals or other address changes, new or removed
# interfaces, or a stray `ip rule del`: it pins what polroutd wanted at that
# moment. Keeping policy routing true continuously is why the polroutd daemon
# exists.
#
# How to load it:
#   As root, on the host: `sh polroutd-nmcli.sh`. It adds the routes and rules to the
#   connection profile active on each interface (persistently; entries a profile
#   already has are not duplicated) and applies them with `nmcli device reapply`.
#   Undo: the same `nmcli connection modify` with -ipv4.routes/-ipv4.routing-rules.
#
# NetworkManager gives the routes and rules its own protocol, so `polroutd flush`
# leaves them and a running polroutd reports them as conflicts. Tables are numbers
# (NM knows no table names). Rules pin today's addresses. NM attaches routes to the
# profile's device only; routes through other devices (copies of container
# bridges' routes) and multipath routes (uplinks = "balance") are listed as
# comments and not configured.
#
# Tables:
#   table 30000 = mgt
#   table 30001 = data

set -eu

# ens192: table mgt (30000)
CONN=$(nmcli -g GENERAL.CONNECTION device show 'ens192')
if [ -z "$CONN" ]; then
    echo 'polroutd-nmcli.sh: no active connection on ens192' >&2
    exit 1
fi
# not expressible here: 172.17.0.0/16 dev docker0 scope link src 172.17.0.1 metric 0 table mgt proto polroutd
nmcli connection modify "$CONN" \
    +ipv4.routes '10.225.160.0/24 0 table=30000 scope=253 src=10.225.160.38' \
    +ipv4.routes '192.0.2.0/24 0 table=30000 type=blackhole' \
    +ipv4.routes '198.51.100.0/24 10 table=30000 type=prohibit' \
    +ipv4.routes '0.0.0.0/0 10.225.160.1 0 table=30000' \
    +ipv4.routing-rules 'priority 30000 from 10.225.160.38 table 30000'
nmcli device reapply 'ens192'

# ens224: table data (30001)
CONN=$(nmcli -g GENERAL.CONNECTION device show 'ens224')
if [ -z "$CONN" ]; then
    echo 'polroutd-nmcli.sh: no active connection on ens224' >&2
    exit 1
fi
# not expressible here: 172.17.0.0/16 dev docker0 scope link src 172.17.0.1 metric 0 table data proto polroutd
nmcli connection modify "$CONN" \
    +ipv4.routes '10.225.144.0/24 10.225.176.1 0 table=254' \
    +ipv4.routes '10.225.176.0/24 0 table=30001 scope=253 src=10.225.176.38' \
    +ipv4.routes '0.0.0.0/0 10.225.176.1 0 table=30001' \
    +ipv4.routing-rules 'priority 30000 from 10.225.176.38 table 30001' \
    +ipv6.routes '2001:db8:66::/48 1024 table=30001 type=unreachable' \
    +ipv6.routes '2001:db8:176::/64 1024 table=30001 src=2001:db8:176::38' \
    +ipv6.routes '::/0 fe80::1 1024 table=30001' \
    +ipv6.routing-rules 'priority 30000 from 2001:db8:176::38 table 30001'
nmcli device reapply 'ens224'
