package totp

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
)

// requireTool returns the path of an external program. Without it the test fails on CI
// (where it must run) and is skipped, loudly, elsewhere.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found (apt-get install -y %s): THE INTEROP TEST DID NOT RUN", name, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("!!! SKIPPED: " + msg)
	return ""
}

// RFC 6238 appendix B: each algorithm has its own seed, the ASCII digits repeated to the
// hash's size.
var rfcSeeds = map[string][]byte{
	"SHA1":   []byte("12345678901234567890"),
	"SHA256": []byte("12345678901234567890123456789012"),
	"SHA512": []byte("1234567890123456789012345678901234567890123456789012345678901234"),
}

var rfcVectors = []struct {
	unix int64
	code map[string]string
}{
	{59, map[string]string{"SHA1": "94287082", "SHA256": "46119246", "SHA512": "90693936"}},
	{1111111109, map[string]string{"SHA1": "07081804", "SHA256": "68084774", "SHA512": "25091201"}},
	{1111111111, map[string]string{"SHA1": "14050471", "SHA256": "67062674", "SHA512": "99943326"}},
	{1234567890, map[string]string{"SHA1": "89005924", "SHA256": "91819424", "SHA512": "93441116"}},
	{2000000000, map[string]string{"SHA1": "69279037", "SHA256": "90698825", "SHA512": "38618901"}},
	{20000000000, map[string]string{"SHA1": "65353130", "SHA256": "77737706", "SHA512": "47863826"}},
}

func TestMatch_RFC6238Vectors_MatchAtTheirStep(t *testing.T) {
	for _, v := range rfcVectors {
		for alg, want := range v.code {
			t.Run(fmt.Sprintf("%s/%d", alg, v.unix), func(t *testing.T) {
				p := Params{Algorithm: alg, Digits: 8}
				at := time.Unix(v.unix, 0)
				got, err := Code(rfcSeeds[alg], p, Step(at, 30))
				if err != nil || got != want {
					t.Fatalf("Code = %q, %v; want %q", got, err, want)
				}
				step, ok := Match(rfcSeeds[alg], want, p, at, 0, 0)
				if !ok || step != v.unix/30 {
					t.Fatalf("Match = %d, %v; want %d, true", step, ok, v.unix/30)
				}
			})
		}
	}
}

func TestStep_FloorsIncludingBefore1970(t *testing.T) {
	for _, tc := range []struct {
		unix   int64
		period int
		want   int64
	}{
		{0, 30, 0}, {29, 30, 0}, {30, 30, 1}, {59, 30, 1}, {59, 60, 0}, {60, 60, 1},
		{-1, 30, -1}, {-30, 30, -1}, {-31, 30, -2}, {1111111109, 0, 37037036},
	} {
		if got := Step(time.Unix(tc.unix, 0), tc.period); got != tc.want {
			t.Errorf("Step(%d, %d) = %d, want %d", tc.unix, tc.period, got, tc.want)
		}
	}
}

// oathtoolTime is the pinned instant of the interop test, far from any step boundary of 30
// or 60 seconds (it is 5 s into both).
const oathtoolTime = "2030-01-02 03:04:05 UTC"

func oathtool(t *testing.T, bin string, secret []byte, p Params, at string) string {
	t.Helper()
	// "--totp=ALG" with '=': "--totp sha256" would read sha256 as the key.
	args := []string{"--totp=" + strings.ToLower(p.Algorithm), "-d", strconv.Itoa(p.Digits),
		"-s", strconv.Itoa(p.Period), "-b", EncodeSecret(secret), "-N", at}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("oathtool %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestMatch_OathtoolCodes_MatchTheirStepOnly(t *testing.T) {
	bin := requireTool(t, "oathtool", "oathtool")
	at, err := time.Parse("2006-01-02 15:04:05 MST", oathtoolTime)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"SHA1", "SHA256", "SHA512"} {
		for _, digits := range []int{6, 8} {
			for _, period := range []int{30, 60} {
				p := Params{Algorithm: alg, Digits: digits, Period: period}
				t.Run(fmt.Sprintf("%s/%d/%ds", alg, digits, period), func(t *testing.T) {
					secret, err := NewSecret()
					if err != nil {
						t.Fatal(err)
					}
					code := oathtool(t, bin, secret, p, oathtoolTime)
					if len(code) != digits {
						t.Fatalf("oathtool printed %q, want %d digits", code, digits)
					}
					want := at.Unix() / int64(period)
					if step, ok := Match(secret, code, p, at, 1, 0); !ok || step != want {
						t.Fatalf("Match at the code's instant = %d, %v; want %d, true", step, ok, want)
					}
					// One step either side is within skew 1 and still names the code's step.
					for _, d := range []int{-1, 1} {
						near := at.Add(time.Duration(d*period) * time.Second)
						if step, ok := Match(secret, code, p, near, 1, 0); !ok || step != want {
							t.Errorf("Match %+d step = %d, %v; want %d, true", d, step, ok, want)
						}
					}
					for _, d := range []int{-2, 2} {
						far := at.Add(time.Duration(d*period) * time.Second)
						if step, ok := Match(secret, code, p, far, 1, 0); ok {
							t.Errorf("Match %+d steps away accepted it (step %d)", d, step)
						}
						// The device is ahead when the verifier's clock is behind it.
						if got, ok := Drift(secret, code, p, far, 5, 1); !ok || got != -d {
							t.Errorf("Drift %+d steps away = %d, %v; want %d, true", d, got, ok, -d)
						}
					}
					if _, ok := Drift(secret, code, p, at, 5, 1); ok {
						t.Error("Drift reported a code inside the narrow window")
					}
				})
			}
		}
	}
}

func TestMatch_Offset_ShiftsTheWindow(t *testing.T) {
	secret := rfcSeeds["SHA1"]
	at := time.Unix(1234567890, 0)
	now := Step(at, 30)
	code, err := Code(secret, Params{}, now+3)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := Match(secret, code, Params{}, at, 1, 0); ok {
		t.Fatal("a code three steps ahead matched without offset")
	}
	if step, ok := Match(secret, code, Params{}, at, 1, 3); !ok || step != now+3 {
		t.Fatalf("Match with offset 3 = %d, %v; want %d, true", step, ok, now+3)
	}
}

func TestMatch_MalformedInput_NotOk(t *testing.T) {
	secret := rfcSeeds["SHA1"]
	at := time.Unix(59, 0)
	good, _ := Code(secret, Params{}, Step(at, 30))
	cases := map[string]struct {
		secret []byte
		code   string
		p      Params
		skew   int
	}{
		"short":          {secret, good[:5], Params{}, 1},
		"long":           {secret, good + "0", Params{}, 1},
		"letters":        {secret, "12a456", Params{}, 1},
		"signed":         {secret, "+12345", Params{}, 1},
		"full-width":     {secret, "１２３４５６", Params{}, 1},
		"empty":          {secret, "", Params{}, 1},
		"empty secret":   {nil, good, Params{}, 1},
		"bad algorithm":  {secret, good, Params{Algorithm: "MD5"}, 1},
		"bad digits":     {secret, good, Params{Digits: 7}, 1},
		"negative skew":  {secret, good, Params{}, -1},
		"8 for 6 digits": {secret, "94287082", Params{}, 1},
	}
	for name, c := range cases {
		if step, ok := Match(c.secret, c.code, c.p, at, c.skew, 0); ok {
			t.Errorf("%s: matched step %d", name, step)
		}
	}
	if _, ok := Match(secret, good, Params{}, at, 0, 0); !ok {
		t.Fatal("the well-formed code itself did not match")
	}
}

func TestMatch_BeforeStepZero_NeverMatches(t *testing.T) {
	secret := rfcSeeds["SHA1"]
	code0, _ := Code(secret, Params{}, 0)
	// At step -1 the window -2..0 holds step 0 only as a real step.
	at := time.Unix(-10, 0)
	if step, ok := Match(secret, code0, Params{}, at, 1, 0); !ok || step != 0 {
		t.Fatalf("Match = %d, %v; want 0, true", step, ok)
	}
	if _, err := Code(secret, Params{}, -1); err == nil {
		t.Fatal("Code accepted a negative step")
	}
}

func TestDrift_ReportsNearestSignedDistance(t *testing.T) {
	secret := rfcSeeds["SHA256"]
	p := Params{Algorithm: "SHA256", Digits: 8, Period: 60}
	at := time.Unix(2000000000, 0)
	now := Step(at, p.Period)
	for _, d := range []int{-5, -2, 2, 5} {
		code, err := Code(secret, p, now+int64(d))
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := Drift(secret, code, p, at, 5, 1); !ok || got != d {
			t.Errorf("device %+d steps: Drift = %d, %v", d, got, ok)
		}
		if _, ok := Drift(secret, code, p, at, abs(d)-1, 1); ok {
			t.Errorf("device %+d steps: Drift matched outside the wide window", d)
		}
	}
	if _, ok := Drift(secret, "00000000", p, at, 1, 1); ok {
		t.Error("Drift with wide == narrow matched")
	}
}

func TestParams_DefaultsAndValidate(t *testing.T) {
	if got := (Params{}).WithDefaults(); got != (Params{"SHA1", 6, 30}) {
		t.Fatalf("defaults = %+v", got)
	}
	if got := (Params{Algorithm: "SHA512", Digits: 8, Period: 60}).WithDefaults(); got != (Params{"SHA512", 8, 60}) {
		t.Fatalf("WithDefaults changed set fields: %+v", got)
	}
	for _, ok := range []Params{{}, {Algorithm: "SHA256"}, {Digits: 8}, {Period: 60}, {"SHA512", 8, 60}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	err := Params{Algorithm: "sha3", Digits: 7, Period: -1}.Validate()
	if err == nil {
		t.Fatal("invalid params passed")
	}
	for _, name := range []string{"algorithm", "digits", "period"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestNewSecret_Is160RandomBits(t *testing.T) {
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSecret()
	if len(a) != 20 || len(b) != 20 || bytes.Equal(a, b) {
		t.Fatalf("secrets %x, %x", a, b)
	}
	if s := EncodeSecret(a); len(s) != 32 || strings.ToUpper(s) != s || strings.Contains(s, "=") {
		t.Fatalf("EncodeSecret = %q", s)
	}
	if got := EncodeSecret([]byte("12345")); got != "GEZDGNBV" {
		t.Fatalf("EncodeSecret(12345) = %q", got)
	}
	if got := EncodeSecret([]byte("1")); got != "GE" {
		t.Fatalf("EncodeSecret(1) = %q, want no padding", got)
	}
}

func TestURI_RoundTripsThroughStandardParsers(t *testing.T) {
	secret := rfcSeeds["SHA1"]
	for _, tc := range []struct {
		issuer, account string
		p               Params
	}{
		{"Example Co", "alice@example.com", Params{}},
		{"ACME: Corp & Sons", "bob+test 1/2?x=y#z", Params{Algorithm: "SHA256", Digits: 8, Period: 60}},
		{"Ünïcødé", "名前", Params{Algorithm: "SHA512"}},
	} {
		t.Run(tc.issuer, func(t *testing.T) {
			p := tc.p.WithDefaults()
			raw := URI(tc.issuer, tc.account, secret, tc.p)
			if strings.Contains(raw, "+") {
				t.Errorf("URI %q has '+': some apps read it as a plus sign, not a space", raw)
			}
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if u.Scheme != "otpauth" || u.Host != "totp" {
				t.Fatalf("scheme/host = %q/%q", u.Scheme, u.Host)
			}
			if want := "/" + tc.issuer + ":" + tc.account; u.Path != want {
				t.Errorf("path = %q, want %q", u.Path, want)
			}
			q := u.Query()
			want := url.Values{
				"secret": {EncodeSecret(secret)}, "issuer": {tc.issuer}, "algorithm": {p.Algorithm},
				"digits": {strconv.Itoa(p.Digits)}, "period": {strconv.Itoa(p.Period)},
			}
			if fmt.Sprint(q) != fmt.Sprint(want) {
				t.Errorf("query = %v, want %v", q, want)
			}

			key, err := otp.NewKeyFromURL(raw)
			if err != nil {
				t.Fatal(err)
			}
			if key.Type() != "totp" || key.Issuer() != tc.issuer || key.Secret() != EncodeSecret(secret) ||
				key.Algorithm().String() != p.Algorithm || int(key.Digits()) != p.Digits ||
				int(key.Period()) != p.Period {
				t.Errorf("otp key: type %q issuer %q secret %q alg %v digits %d period %d",
					key.Type(), key.Issuer(), key.Secret(), key.Algorithm(), key.Digits(), key.Period())
			}
			// pquerna splits the label at its first ':', so it reads the account right only
			// when the issuer has none; the issuer parameter covers the issuer.
			if !strings.Contains(tc.issuer, ":") && key.AccountName() != tc.account {
				t.Errorf("otp account = %q, want %q", key.AccountName(), tc.account)
			}
		})
	}
}

func TestURI_GoogleKeyUriFormat_Exact(t *testing.T) {
	got := URI("Example Co", "alice@example.com", []byte("12345678901234567890"), Params{})
	want := "otpauth://totp/Example%20Co:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" +
		"&issuer=Example%20Co&algorithm=SHA1&digits=6&period=30"
	if got != want {
		t.Fatalf("URI =\n %s\nwant\n %s", got, want)
	}
	if got := URI("", "alice", []byte("12345"), Params{}); got != "otpauth://totp/alice?secret=GEZDGNBV&algorithm=SHA1&digits=6&period=30" {
		t.Fatalf("URI without issuer = %s", got)
	}
}

func TestNormalizeCode(t *testing.T) {
	for in, want := range map[string]string{
		"123456":          "123456",
		"123 456":         "123456",
		" 123-456 ":       "123456",
		"12 34 56\n":      "123456",
		"１２３４５６":          "123456",
		"１２３　４５６":         "123456",
		"123–456":         "123456", // en dash
		"123－456":         "123456", // full-width hyphen-minus
		"1234\t5678":      "12345678",
		"12a456":          "12a456", // kept, so Match refuses it
		"":                "",
		"٣٤٥":             "٣٤٥", // other digit systems are not mapped
		"123\u200b456":    "123456",
		"9876-5432":       "98765432",
		"  ":              "",
		"１2３-4５6":         "123456",
		"123.456":         "123.456",
		"+123456":         "+123456",
		"123456 (backup)": "123456(backup)",
	} {
		if got := NormalizeCode(in); got != want {
			t.Errorf("NormalizeCode(%q) = %q, want %q", in, got, want)
		}
	}
}
