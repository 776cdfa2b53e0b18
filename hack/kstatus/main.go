// Command kstatus prints the kstatus status of Kubernetes objects, as Flux computes it.
//
// It reads one JSON object, or a JSON list of objects, on stdin and prints one line per object:
// "<status>\t<message>", where status is what sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute
// returns (InProgress, Failed, Current, Terminating, NotFound, Unknown). Vigil's tests use it to
// check the conditions the operator writes with the kstatus library itself.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("read stdin: %v", err)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		raw = []json.RawMessage{data}
	}
	for i, item := range raw {
		// Unstructured's own decoder keeps integers as int64, as the apiserver's client does.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(item); err != nil {
			fail("object %d is not a Kubernetes object: %v", i, err)
		}
		result, err := status.Compute(obj)
		if err != nil {
			fail("compute status: %v", err)
		}
		fmt.Printf("%s\t%s\n", result.Status, result.Message)
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(2)
}
