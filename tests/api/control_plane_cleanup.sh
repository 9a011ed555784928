# Stop what a run's real node left (run by control_plane.rs at exit, and for runs that were
# killed): $1 the run's folder, $2 its bridge. A container outlives containerd and its shim, so
# each shim's children (the containers' first processes) are ended before the shim.
dir="$1" bridge="$2"
pkill -9 -f "$dir/node/kubelet" 2>/dev/null
pkill -9 -f "containerd --config $dir/node" 2>/dev/null
for shim in $(pgrep -f "containerd-shim-runc-v2 .*$dir/node"); do
    pkill -9 -P "$shim" 2>/dev/null
    kill -9 "$shim" 2>/dev/null
done
sleep 0.5
grep " $dir" /proc/mounts | cut -d' ' -f2 | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
ip link delete "$bridge" 2>/dev/null
rm -rf "$dir"
true
