package qrdecode_test

import (
	"bytes"
	"image"
	"image/png"
	"testing"

	"github.com/latchkey/latchkey/internal/totp"
	"github.com/latchkey/latchkey/internal/totp/qrdecode"
)

func TestDecode(t *testing.T) {
	const text = "otpauth://totp/Latchkey:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Latchkey"
	qr, err := totp.QRPNG(text, 256)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := qrdecode.Decode(qr); got != text || err != nil {
		t.Errorf("Decode(QRPNG(%q)) = %q, %v, want the text back", text, got, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	blank := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range blank.Pix {
		blank.Pix[i] = 0xff
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, blank); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not a PNG", []byte("GIF89a")},
		{"blank image", buf.Bytes()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := qrdecode.Decode(tt.data); err == nil {
				t.Errorf("Decode(%s) = %q, nil, want an error", tt.name, got)
			}
		})
	}
}
