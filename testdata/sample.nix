# Tiny, reproducible closure used to produce testdata/sample-cache (see sample-cache.sh).
#
#   hello-greeting-1.0 ──► greeting-lib-0.3 ──► greeting-data-2.1
#            └───────────────────────────────────────┘
#
# Plain `derivation`s with builder /bin/sh and absolute paths to coreutils (the builder has no PATH),
# so no nixpkgs is needed. `system` is fixed so the store paths do not depend on the machine that
# regenerates the cache; override it with `--argstr system …` only if you must build elsewhere.
{ system ? "x86_64-linux" }:
let
  mk = name: script: derivation {
    inherit name system;
    builder = "/bin/sh";
    args = [ "-c" script ];
  };

  greeting-data = mk "greeting-data-2.1" ''
    set -e
    /bin/mkdir -p $out/share/greeting
    printf 'Hello, world!\n' > $out/share/greeting/en.txt
    printf 'Hallo, Welt!\n' > $out/share/greeting/de.txt
    printf 'Bonjour, le monde !\n' > $out/share/greeting/fr.txt
    /bin/ln -s en.txt $out/share/greeting/default.txt
  '';

  greeting-lib = mk "greeting-lib-0.3" ''
    set -e
    /bin/mkdir -p $out/lib $out/share/doc/greeting-lib
    printf '%s\n' \
      '# greeting-lib 0.3: shell helpers for printing greetings' \
      'greeting_dir=${greeting-data}/share/greeting' \
      'greet() {' \
      '  f="$greeting_dir/''${1:-default}.txt"' \
      '  while IFS= read -r line; do printf "%s\n" "$line"; done < "$f"' \
      '}' > $out/lib/greeting.sh
    printf 'greeting-lib 0.3\nLicense: MIT\n' > $out/share/doc/greeting-lib/README
    /bin/ln -s ${greeting-data}/share/greeting $out/share/greeting
  '';

  hello-greeting = mk "hello-greeting-1.0" ''
    set -e
    /bin/mkdir -p $out/bin $out/share/doc/hello-greeting
    printf '%s\n' \
      '#!/bin/sh' \
      '# usage: hello-greeting [en|de|fr]' \
      '. ${greeting-lib}/lib/greeting.sh' \
      'greet "$@"' > $out/bin/hello-greeting
    /bin/chmod 0755 $out/bin/hello-greeting
    printf 'hello-greeting 1.0\ndata: %s\n' ${greeting-data} > $out/share/doc/hello-greeting/README
  '';
in
hello-greeting
