package task

import _ "embed"

// Schema is the JSON Schema of a task file (draft 2020-12), as `iog launch --schema` prints it.
//
//go:embed schema.json
var Schema []byte
