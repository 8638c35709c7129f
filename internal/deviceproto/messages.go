package deviceproto

import "time"

// Device API paths, under the server's URL.
const (
	PathActivate   = "/api/v1/device/activate"        // POST ActivateRequest → ActivateResponse
	PathRedeem     = "/api/v1/device/transfer/redeem" // POST ActivateRequest → ActivateResponse
	PathDevice     = "/api/v1/device"                 // GET → DeviceInfo
	PathDevices    = "/api/v1/device/devices"         // GET → DevicesResponse
	PathEvents     = "/api/v1/device/events"          // GET → text/event-stream of Challenge
	PathChallenges = "/api/v1/device/challenges"      // GET [?wait=25s] → ChallengesResponse
	PathTransfer   = "/api/v1/device/transfer"        // POST → TransferResponse
	// PathAnswer is followed by the challenge ID and "/answer": POST AnswerRequest → AnswerResponse.
	PathAnswer = "/api/v1/device/challenges/"
)

// ActivateRequest binds a new key: with an activation code (PathActivate) or a transfer code
// (PathRedeem). It is signed with the new key, without HeaderDevice.
type ActivateRequest struct {
	Code      string `json:"code"`
	PublicKey string `json:"public_key"` // EncodePublicKey
	Name      string `json:"name"`       // 1–64 characters, shown on the Security page
	Platform  string `json:"platform"`   // "linux", "darwin", "windows", "ios", "android", …
}

// Device states on the wire.
const (
	StateActive          = "active"
	StatePendingApproval = "pending_approval"
)

// ActivateResponse answers an activation. While State is StatePendingApproval, Number is
// what the user types on their existing device, and TOTP is absent until GET PathDevice
// reports the device active.
type ActivateResponse struct {
	DeviceInfo
	// Number, for a pending device, is what the user types into their existing device.
	Number string `json:"number,omitempty"`
}

// DeviceInfo describes the calling device and the account it belongs to.
type DeviceInfo struct {
	DeviceID     int64  `json:"device_id"`
	State        string `json:"state"`
	Name         string `json:"name"`
	Primary      bool   `json:"primary"`
	Username     string `json:"username"`
	Issuer       string `json:"issuer"`
	Server       string `json:"server"`
	NumberLength int    `json:"number_length"`
	// TOTP is the seed for offline codes, present when State is StateActive.
	TOTP *TOTPSeed `json:"totp,omitempty"`
}

// TOTPSeed is the device's offline-code credential.
type TOTPSeed struct {
	Secret string `json:"secret"`      // base32, as in otpauth URIs
	URI    string `json:"otpauth_uri"` // otpauth://totp/...
}

// DevicesResponse lists the devices of the calling device's account.
type DevicesResponse struct {
	Devices []DeviceSummary `json:"devices"`
}

// DeviceSummary is one device in a listing.
type DeviceSummary struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Platform   string     `json:"platform"`
	State      string     `json:"state"`
	Primary    bool       `json:"primary"`
	This       bool       `json:"this"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// Challenge kinds on the wire.
const (
	ChallengeLogin     = "login"      // approve a sign-in
	ChallengeAddDevice = "add_device" // approve an additional device
)

// Challenge is a push request as the device sees it. The number is not in it: the user reads
// it in the browser (or in the new device's output) and types it.
type Challenge struct {
	ID           string    `json:"id"`
	Kind         string    `json:"kind"`
	Username     string    `json:"username"`
	Application  string    `json:"application"`
	Browser      string    `json:"browser"`
	IP           string    `json:"ip"`
	Time         time.Time `json:"time"`
	ExpiresAt    time.Time `json:"expires_at"`
	NumberLength int       `json:"number_length"`
	// DeviceName names the device to be added (ChallengeAddDevice).
	DeviceName string `json:"device_name,omitempty"`
}

// ChallengesResponse lists pending challenges to the calling device, oldest first.
type ChallengesResponse struct {
	Challenges []Challenge `json:"challenges"`
}

// Decisions.
const (
	DecisionApprove = "approve"
	DecisionDeny    = "deny"
	DecisionFraud   = "fraud" // deny, "this wasn't me"
)

// AnswerRequest answers a challenge; Number is required to approve.
type AnswerRequest struct {
	Decision string `json:"decision"`
	Number   string `json:"number,omitempty"`
}

// AnswerResponse reports the challenge's state after the answer: "approved" or "denied"
// (with Reason "denied", "fraud" or "wrong_number").
type AnswerResponse struct {
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// TransferResponse is a one-time transfer code for switching to a new device.
type TransferResponse struct {
	Code      string    `json:"code"`
	URI       string    `json:"uri"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ErrorResponse is the body of every error: {"error":{"code","message"}}.
type ErrorResponse struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// EventChallenge is the SSE event name that carries a Challenge as its data.
const EventChallenge = "challenge"
