// Package config reads nixrepo.toml: the schema, defaults, strict decoding
// and validation.
//
// Decoding is strict: an unknown key or a bad value is an error that names the
// key and, where the TOML decoder knows it, the line. Relative paths (key
// files) and relative file:// URLs resolve against the folder of the config
// file, so a config and its data can move together.
//
// Domain packages never import config: the command layer maps a Config to the
// Options of each stage.
package config
