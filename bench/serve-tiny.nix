# ~1500 tiny store paths for bench/serve.sh (many different narinfos).
# nix-build --no-out-link bench/serve-tiny.nix --argstr salt SALT
{ n ? 1500, salt ? "" }:
builtins.genList (i: derivation {
  name = "p-${toString i}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo ${toString i}${salt} > $out" ];
}) n
