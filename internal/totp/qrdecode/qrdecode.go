// Package qrdecode reads QR codes from PNG images. Tests (unit and browser end-to-end) use it
// to read the QR code a page shows; it lives apart from package totp so that gozxing is never
// linked into a binary.
package qrdecode

import (
	"bytes"
	"fmt"
	"image/png"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// Decode returns the text of the QR code in a PNG image. It tries the fast path first and
// then gozxing's harder search, so that screenshots with scaling or surrounding page content
// also decode. It returns an error if the data is not a PNG or holds no readable QR code.
func Decode(pngData []byte) (string, error) {
	img, err := png.Decode(bytes.NewReader(pngData))
	if err != nil {
		return "", fmt.Errorf("decode png: %w", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", fmt.Errorf("bitmap: %w", err)
	}
	r := qrcode.NewQRCodeReader()
	res, err := r.Decode(bmp, nil)
	if err != nil {
		res, err = r.Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true})
	}
	if err != nil {
		// gozxing's finder-pattern search misses some valid codes (about one in twelve of our
		// random secrets); an image that is nothing but the code with its quiet zone, which is
		// what QRPNG renders, is read exactly by the pure-barcode path.
		res, err = r.Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	}
	if err != nil {
		return "", fmt.Errorf("read qr code: %w", err)
	}
	return res.GetText(), nil
}
