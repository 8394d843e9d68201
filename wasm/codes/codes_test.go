package codes

import "testing"

func TestNormalize_DropsSeparatorsAndMapsDigitScripts(t *testing.T) {
	for in, want := range map[string]string{
		"123456":         "123456",
		" 123 456 ":      "123456",
		"123-456":        "123456",
		"123–456":        "123456",
		"１２３４５６":         "123456",
		"١٢٣٤٥٦":         "123456",
		"۱۲۳ ۴۵۶":        "123456",
		"123\u200b456":   "123456",
		"123\u00a0456\n": "123456",
		"12a456":         "12a456",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValid_OnlySixDigits(t *testing.T) {
	for in, want := range map[string]bool{
		"123456": true, "１２３ ４５６": true, "12345": false, "1234567": false, "12a456": false, "": false,
	} {
		if _, ok := Valid(in); ok != want {
			t.Errorf("Valid(%q) = %v, want %v", in, ok, want)
		}
	}
}

func TestRecovery_FormatsAnyCaseAndLookAlikes(t *testing.T) {
	for in, want := range map[string]string{
		"abcd-efgh-jkmn":   "abcd-efgh-jkmn",
		"ABCDEFGHJKMN":     "abcd-efgh-jkmn",
		" abcd efgh jkmn ": "abcd-efgh-jkmn",
		"oOiI-lL00-1111":   "0011-1100-1111",
		"ＡＢＣＤ－ＥＦＧＨ－ＪＫＭＮ": "abcd-efgh-jkmn",
	} {
		got, ok := Recovery(in)
		if !ok || got != want {
			t.Errorf("Recovery(%q) = %q, %v; want %q, true", in, got, ok, want)
		}
	}
	for _, in := range []string{"abcd-efgh-jkm", "abcd-efgh-jkmnp", "abcd-efgh-jkmu", "123456"} {
		if _, ok := Recovery(in); ok {
			t.Errorf("Recovery(%q) accepted", in)
		}
	}
}

func TestClassify(t *testing.T) {
	if Classify("123 456") != KindOneTime || Classify("abcd-efgh-jkmn") != KindRecovery || Classify("hello") != KindUnknown {
		t.Fatal("Classify confused the kinds")
	}
}

func TestRecoveryFile_OneCodeALine(t *testing.T) {
	got := RecoveryFile("Shop", "alice", []string{"ABCD-EFGH-JKMN", "0000-1111-2222"})
	want := "Recovery codes for Shop (alice)\nEach code works once. Keep them somewhere safe, apart from your phone.\n\nabcd-efgh-jkmn\n0000-1111-2222\n"
	if got != want {
		t.Fatalf("got %q", got)
	}
}
