package templates

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// funcs returns the template functions bound to a language.
func funcs(lang string, loc *time.Location) map[string]any {
	en := lang == "en"
	pick := func(de, english string) string {
		if en {
			return english
		}
		return de
	}
	return map[string]any{
		"lang": func() string { return lang },
		// money formats an amount in cents: "1.200,00 EUR" / "EUR 1,200.00".
		"money": func(cents int64, currency string) string { return Money(lang, cents, currency) },
		// interval names a billing interval.
		"interval": func(iv string) string { return Label(lang, LabelInterval, iv) },
		// vat prints a VAT rate: "19 %" / "19%".
		"vat": func(p float64) string { return VAT(lang, p) },
		// datetime prints an instant in Europe/Berlin.
		"datetime": func(t any) string {
			tm, ok := asTime(t)
			if !ok {
				return ""
			}
			tm = tm.In(loc)
			if en {
				return tm.Format("2 January 2006, 15:04 MST")
			}
			return tm.Format("02.01.2006, 15:04 Uhr")
		},
		// date prints the calendar day of an instant in Europe/Berlin.
		"date": func(t any) string {
			tm, ok := asTime(t)
			if !ok {
				return ""
			}
			return day(en, tm.In(loc))
		},
		// day prints a calendar date (a value with a Date method, such as
		// a catalog validity date) without converting time zones.
		"day": func(d any) string {
			if d == nil {
				return ""
			}
			if v, ok := d.(interface{ Date() (int, time.Month, int) }); ok {
				y, m, dd := v.Date()
				return day(en, time.Date(y, m, dd, 0, 0, 0, 0, time.UTC))
			}
			return fmt.Sprint(d)
		},
		// value prints a configured property's value.
		"value": func(v any) string {
			switch x := v.(type) {
			case bool:
				if x {
					return pick("ja", "yes")
				}
				return pick("nein", "no")
			case float64:
				if x == math.Trunc(x) && math.Abs(x) < 1e15 {
					return strconv.FormatInt(int64(x), 10)
				}
				return strconv.FormatFloat(x, 'f', -1, 64)
			case json.Number:
				return x.String()
			case nil:
				return ""
			}
			return fmt.Sprint(v)
		},
		// model names a contract model.
		"model": func(m string) string { return Label(lang, LabelModelLong, m) },
		// role names a party or recipient role.
		"role": func(r string) string { return Label(lang, LabelParty, r) },
		// intent names a declared intent.
		"intent": func(i any) string { return Label(lang, LabelIntentLong, fmt.Sprint(i)) },
		// status names an order status; German uses the labels of the
		// status page verbatim.
		"status": func(s any) string { return Label(lang, LabelStatus, fmt.Sprint(s)) },
		// days prints a number of days.
		"days": func(n int) string {
			if n == 1 {
				return pick("1 Tag", "1 day")
			}
			return fmt.Sprintf("%d %s", n, pick("Tage", "days"))
		},
		// pick chooses the German or the English string.
		"pick": pick,
	}
}

// VAT prints a VAT rate the way readers of lang expect: "19 %", "7,7 %"
// in German, "19%", "7.7%" in English.
func VAT(lang string, p float64) string {
	s := strconv.FormatFloat(p, 'f', -1, 64)
	if lang == "en" {
		return s + "%"
	}
	return strings.ReplaceAll(s, ".", ",") + " %"
}

// Day prints the calendar day of t, in t's location, the way readers of
// lang expect: "02.01.2006" in German, "2 January 2006" in English. Code
// that formats many values for a template ahead of rendering (a long
// billing reminder) uses it and Money instead of the template functions.
func Day(lang string, t time.Time) string { return day(lang == "en", t) }

func day(en bool, t time.Time) string {
	if en {
		return t.Format("2 January 2006")
	}
	return t.Format("02.01.2006")
}

func asTime(t any) (time.Time, bool) {
	switch x := t.(type) {
	case time.Time:
		return x, !x.IsZero()
	case *time.Time:
		if x == nil {
			return time.Time{}, false
		}
		return *x, !x.IsZero()
	}
	return time.Time{}, false
}

// Money formats an amount in cents the way readers of lang expect:
// "1.200,00 EUR" in German, "EUR 1,200.00" in English.
func Money(lang string, cents int64, currency string) string {
	if currency == "" {
		currency = "EUR"
	}
	en := lang == "en"
	thousands, decimal := byte('.'), byte(',')
	if en {
		thousands, decimal = ',', '.'
	}
	u := uint64(cents)
	if cents < 0 {
		u = -u
	}
	var digits [20]byte
	whole := strconv.AppendUint(digits[:0], u/100, 10)
	b := make([]byte, 0, 32+len(currency))
	if en {
		b = append(b, currency...)
		b = append(b, ' ')
	}
	if cents < 0 {
		b = append(b, '-')
	}
	for i, d := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b = append(b, thousands)
		}
		b = append(b, d)
	}
	frac := u % 100
	b = append(b, decimal, byte('0'+frac/10), byte('0'+frac%10))
	if !en {
		b = append(b, ' ')
		b = append(b, currency...)
	}
	return string(b)
}
