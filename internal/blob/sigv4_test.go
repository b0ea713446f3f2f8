package blob

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The "get-vanilla" case of AWS's Signature Version 4 test suite.
func TestSignV4Vector(t *testing.T) {
	r, _ := http.NewRequest("GET", "https://example.amazonaws.com/", nil)
	signV4(r, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "service",
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC))
	want := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
	if got := r.Header.Get("Authorization"); got != want {
		t.Errorf("Authorization:\n got %s\nwant %s", got, want)
	}
	if !strings.HasPrefix(r.Header.Get("X-Amz-Date"), "20150830T") {
		t.Errorf("date %s", r.Header.Get("X-Amz-Date"))
	}
}

func TestParseS3URL(t *testing.T) {
	env := map[string]string{"AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk"}
	cfg, err := ParseS3URL("s3://bkt?endpoint=https://s3.example&region=eu-west-1", func(k string) string { return env[k] })
	if err != nil || cfg.Bucket != "bkt" || cfg.Endpoint != "https://s3.example" || cfg.Region != "eu-west-1" || cfg.AccessKey != "ak" || cfg.SecretKey != "sk" {
		t.Fatalf("%+v %v", cfg, err)
	}
	for _, bad := range []string{"s3://bkt", "http://bkt?endpoint=x", "s3://bkt/path?endpoint=https://x", "s3://?endpoint=https://x"} {
		if _, err := ParseS3URL(bad, func(k string) string { return env[k] }); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParseS3URL("s3://bkt?endpoint=https://x", func(string) string { return "" }); err == nil {
		t.Error("accepted without keys")
	}
}
