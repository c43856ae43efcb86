// Command writersbench drives bench/writers.sh: it makes synthetic binary
// caches, creates S3 buckets, uploads to and reads from running `nixrepo
// serve` processes over HTTP, and checks the JSON report of `nixrepo run`.
// It imports no nixrepo package: the servers are nixrepo binaries set up by
// the script, one of them built from an older commit.
//
//	writersbench gen -out DIR -n N [-refs]     a binary cache of N small paths (NAR of one
//	                                           regular file, Compression: none, unsigned);
//	                                           -refs: some paths reference earlier ones
//	writersbench mkbucket -endpoint URL -bucket NAME
//	                                           create an S3 bucket (credentials from
//	                                           AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
//	writersbench put -url URL -token T -dir DIR [-conns 64] [-pids name=PID,…]
//	                                           PUT every NAR file of DIR (untimed), then every
//	                                           narinfo (timed); prints one RESULT line
//	writersbench get -urls URL,… -dir DIR [-conns 64] [-dur 10s] [-pids name=PID,…]
//	                                           GET the narinfos of DIR for dur, the connections
//	                                           spread over the URLs; prints one RESULT line
//	writersbench runcheck -json FILE -n N      check a `nixrepo run --json` report: N paths
//	                                           accepted and consumed, none refused; prints
//	                                           the ingest seconds
//
// Every failure (an error, any answer but 2xx) exits with status 1. A RESULT
// line is "RESULT key=value …": n (requests timed), secs, rate (per second),
// cpu_self and cpu_NAME (CPU seconds used during the timed part by the
// driver and by each process of -pids).
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: writersbench gen|mkbucket|put|get|runcheck [flags]"))
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(args)
	case "mkbucket":
		err = mkbucket(args)
	case "put":
		err = put(args)
	case "get":
		err = get(args)
	case "runcheck":
		err = runcheck(args)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "writersbench:", err)
	os.Exit(1)
}
