# Removes everything a Roost server with `--firewall-table $1` made on the host: its
# two nftables tables, its bridges (labelled roost:<table>:<network id>) and their
# policy-routing rules. For benchmarks and scripts that run throwaway servers.
remove_roost_networks() {
  local table=$1 link alias id
  nft delete table ip "$table" 2>/dev/null || true
  nft delete table bridge "$table" 2>/dev/null || true
  for link in /sys/class/net/*; do
    [ -d "$link/bridge" ] || continue
    alias=$(cat "$link/ifalias" 2>/dev/null || true)
    case "$alias" in
      "roost:$table:"*)
        # The network's policy table: the one routing its range to this bridge.
        for id in $(ip -4 route show table all dev "${link##*/}" 2>/dev/null | sed -n 's/.* table \([0-9]*\).*/\1/p'); do
          ip rule del fwmark "$id/0xffffffff" table "$id" 2>/dev/null || true
        done
        ip link delete "${link##*/}" 2>/dev/null || true
        ;;
    esac
  done
}
