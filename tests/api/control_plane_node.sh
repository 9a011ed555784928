# The real node's images and containerd configuration (run by control_plane.rs, {{node}} etc.
# filled in there). No registry: images are docker archives imported with ctr.
D={node}
mkdir -p $D/pause/rootfs $D/web/rootfs/bin $D/cni
# The sandbox ("pause") process: holds the pod's namespaces, reaps orphans, ends on SIGTERM.
cat > $D/pause.c <<'SRC'
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int s) {{ (void)s; _exit(0); }}
static void reap(int s) {{ (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {{}} }}
int main(void) {{
  signal(SIGTERM, stop); signal(SIGINT, stop); signal(SIGCHLD, reap);
  for (;;) pause();
}}
SRC
gcc -static -O2 -o $D/pause/rootfs/pause $D/pause.c
cp /bin/busybox $D/web/rootfs/bin/busybox
for c in sh httpd echo sleep cat nc wget ls; do ln -sf busybox $D/web/rootfs/bin/$c; done
archive() {{
  local dir=$1 ref=$2 cmd=$3
  tar -C $dir/rootfs -cf $dir/layer.tar .
  local diff cfg
  diff=$(sha256sum $dir/layer.tar | cut -d' ' -f1)
  printf '{{"architecture":"amd64","os":"linux","config":{{"Cmd":%s}},"rootfs":{{"type":"layers","diff_ids":["sha256:%s"]}}}}' "$cmd" $diff > $dir/config.json
  cfg=$(sha256sum $dir/config.json | cut -d' ' -f1)
  mkdir -p $dir/out
  mv $dir/layer.tar $dir/out/$diff.tar
  mv $dir/config.json $dir/out/$cfg.json
  printf '[{{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s.tar"]}}]' $cfg $ref $diff > $dir/out/manifest.json
  tar -C $dir/out -cf $dir.tar .
}}
archive $D/pause kubegate.test/pause:1 '["/pause"]'
archive $D/web {image}:1 '["/bin/sh","-c","echo started; exec httpd -f -v -p 8080"]'
cat > $D/cni/10-kubegate.conflist <<'CNI'
{{"cniVersion":"0.4.0","name":"kubegate-test","plugins":[
 {{"type":"bridge","bridge":"kgtest{n}","isGateway":true,
   "ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.222.{n}.0/24"}}]],"routes":[{{"dst":"0.0.0.0/0"}}]}}}},
 {{"type":"portmap","capabilities":{{"portMappings":true}}}},
 {{"type":"loopback"}}]}}
CNI
cat > $D/containerd.toml <<TOML
version = 2
root = "$D/containerd/root"
state = "$D/containerd/state"
[grpc]
  address = "$D/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "kubegate.test/pause:1"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$D/cni"
TOML
