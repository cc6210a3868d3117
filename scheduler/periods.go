package scheduler

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"time"

	"mailflow/mailflow"
)

// Billing intervals as the catalog spells them (a price's
// "interval" in the catalog JSON, see the README).
const (
	intervalOnce      = "once"
	intervalMonthly   = "monthly"
	intervalQuarterly = "quarterly"
	intervalYearly    = "yearly"
)

// ErrUnknownInterval is returned by DuePeriods for an interval the catalog
// does not define, so the billing run can skip and report that one order
// instead of guessing a period length for it.
var ErrUnknownInterval = errors.New("scheduler: unknown billing interval")

// DuePeriods returns, in chronological order, every billing period of an
// order bound at binding whose End is not after now, for a price of
// amountCents per full period and vatPercent VAT (19, 7, 0, or with decimals
// such as 7.7).
//
// Periods are calendar months, quarters (Jan–Mar, Apr–Jun, Jul–Sep, Oct–Dec)
// or years in loc, the billing time zone (Europe/Berlin in production). The
// binding time may be in any zone; what counts is its calendar date in loc,
// and billing starts on that day: the first period runs from the binding date
// to the end of its calendar period and is prorated by days. A "once" price
// yields a single period "once" covering the binding day, due from the
// following midnight.
//
// Periods whose Start is before from are skipped; pass the zero time for all.
// A caller that has billed everything up to some period End passes that End as
// from. The cost is proportional to the number of periods returned, not to the
// age of the order, so a daemon that was down for months catches up with one
// call and a current order costs the same as a new one.
//
// Dates are computed with time.Date in loc and days counted on the civil
// calendar, never by adding 24-hour durations, so months containing a
// daylight-saving change have local-midnight bounds and the right day count.
func DuePeriods(binding time.Time, interval string, amountCents int64, vatPercent float64, loc *time.Location, from, now time.Time) ([]mailflow.Period, error) {
	if loc == nil {
		return nil, errors.New("scheduler: due periods: nil time zone")
	}
	if binding.IsZero() {
		// A zero time usually is an unset binding column; billing it would
		// invoice two thousand years.
		return nil, errors.New("scheduler: due periods: zero binding time")
	}
	// Bounding the rate keeps VAT within the net amount, so Amounts cannot
	// overflow for any amount that fits in int64.
	if math.IsNaN(vatPercent) || vatPercent < 0 || vatPercent > 100 {
		return nil, fmt.Errorf("scheduler: due periods: VAT %v%% outside 0..100", vatPercent)
	}

	by, bm, bd := binding.In(loc).Date()
	bindStart := time.Date(by, bm, bd, 0, 0, 0, 0, loc)

	var step int // months per period
	switch interval {
	case intervalOnce:
		return dueOnce(by, bm, bd, bindStart, amountCents, vatPercent, loc, from, now), nil
	case intervalMonthly:
		step = 1
	case intervalQuarterly:
		step = 3
	case intervalYearly:
		step = 12
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownInterval, interval)
	}

	// Periods are numbered k = 0, 1, … from the calendar period containing
	// the binding date; period k starts at month index first+k*step.
	first := alignMonth(monthIndex(by, bm), step)

	// Jump straight to the first period starting at or after from instead of
	// walking from the binding date.
	k := 0
	if from.After(bindStart) {
		fy, fm, _ := from.In(loc).Date()
		k = (alignMonth(monthIndex(fy, fm), step) - first) / step
		if k < 0 {
			k = 0
		}
		if periodStart(first+k*step, k, bindStart, loc).Before(from) {
			k++
		}
	}

	ny, nm, _ := now.In(loc).Date()
	var out []mailflow.Period
	if n := (monthIndex(ny, nm)-first)/step - k; n > 0 {
		out = make([]mailflow.Period, 0, n)
	}
	for ; ; k++ {
		startIdx := first + k*step
		endIdx := startIdx + step
		ey, em := monthDate(endIdx)
		end := time.Date(ey, em, 1, 0, 0, 0, 0, loc)
		if end.After(now) {
			break
		}
		cy, cm := monthDate(startIdx)
		full := civilDays(cy, cm, 1, ey, em, 1)
		start, days := time.Date(cy, cm, 1, 0, 0, 0, 0, loc), full
		if k == 0 {
			start, days = bindStart, civilDays(by, bm, bd, ey, em, 1)
		}
		net, vat, gross := Amounts(amountCents, days, full, vatPercent)
		out = append(out, mailflow.Period{
			Key:        periodKey(cy, cm, step),
			Start:      start,
			End:        end,
			Days:       days,
			FullDays:   full,
			NetCents:   net,
			VATCents:   vat,
			GrossCents: gross,
		})
	}
	return out, nil
}

// dueOnce returns the single period of a "once" price if it is due and not
// skipped by from.
func dueOnce(y int, m time.Month, d int, start time.Time, amountCents int64, vatPercent float64, loc *time.Location, from, now time.Time) []mailflow.Period {
	end := time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	if start.Before(from) || end.After(now) {
		return nil
	}
	net, vat, gross := Amounts(amountCents, 1, 1, vatPercent)
	return []mailflow.Period{{
		Key:        intervalOnce,
		Start:      start,
		End:        end,
		Days:       1,
		FullDays:   1,
		NetCents:   net,
		VATCents:   vat,
		GrossCents: gross,
	}}
}

// periodStart is the Start of period k beginning at month index idx: the
// binding date for the first period, the calendar start otherwise.
func periodStart(idx, k int, bindStart time.Time, loc *time.Location) time.Time {
	if k == 0 {
		return bindStart
	}
	y, m := monthDate(idx)
	return time.Date(y, m, 1, 0, 0, 0, 0, loc)
}

// monthIndex numbers months continuously (January of year 0 is 0) so that
// period arithmetic is integer arithmetic.
func monthIndex(y int, m time.Month) int {
	return y*12 + int(m) - 1
}

// monthDate is the inverse of monthIndex.
func monthDate(idx int) (int, time.Month) {
	y, r := idx/12, idx%12
	if r < 0 {
		y, r = y-1, r+12
	}
	return y, time.Month(r + 1)
}

// alignMonth rounds a month index down to the start of its period; step
// divides 12, so periods of every year start in January.
func alignMonth(idx, step int) int {
	r := idx % step
	if r < 0 {
		r += step
	}
	return idx - r
}

// civilDays counts calendar days from one date to another. UTC has no
// daylight-saving shifts, so the difference is an exact multiple of 24h.
func civilDays(y1 int, m1 time.Month, d1 int, y2 int, m2 time.Month, d2 int) int {
	a := time.Date(y1, m1, d1, 0, 0, 0, 0, time.UTC)
	b := time.Date(y2, m2, d2, 0, 0, 0, 0, time.UTC)
	return int(b.Sub(a) / (24 * time.Hour))
}

// periodKey formats the reminder key of the calendar period starting in
// year y, month m. Keys are zero-padded so they also sort chronologically.
func periodKey(y int, m time.Month, step int) string {
	b := make([]byte, 0, 7)
	b = appendPadded(b, y, 4)
	switch step {
	case 1:
		b = append(b, '-')
		b = appendPadded(b, int(m), 2)
	case 3:
		b = append(b, "-Q"...)
		b = strconv.AppendInt(b, int64(m-1)/3+1, 10)
	}
	return string(b)
}

// appendPadded appends non-negative v in decimal, zero-padded to width.
func appendPadded(b []byte, v, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], int64(v), 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// Amounts computes the line amounts for days out of fullDays of a price of
// amountCents per full period with vatPercent VAT.
//
// Rounding rule: each line is rounded on its own to whole cents,
// kaufmännisch gerundet, that is half away from zero (0.5 → 1, −0.5 → −1):
//
//	net   = round(amountCents × days / fullDays)
//	VAT   = round(net × bp / 10000), bp = vatPercent in basis points,
//	        itself rounded to the nearest integer (7.7 % → 770)
//	gross = net + VAT
//
// VAT is computed on the rounded net, so the three printed figures always
// add up. Everything after converting the rate to basis points is exact
// integer arithmetic with a 128-bit intermediate product: a float would turn
// 500 × 7.7 % = 38.50 into 38.4999… and round it the wrong way.
//
// fullDays must be positive; Amounts panics otherwise, as integer division
// by zero would, and if a result does not fit in int64. vatPercent must be
// finite.
func Amounts(amountCents int64, days, fullDays int, vatPercent float64) (net, vat, gross int64) {
	if fullDays <= 0 {
		panic(fmt.Sprintf("scheduler: amounts: fullDays %d not positive", fullDays))
	}
	bp := int64(math.Round(vatPercent * 100))
	net = mulDivRound(amountCents, int64(days), int64(fullDays))
	vat = mulDivRound(net, bp, 10000)
	gross = net + vat
	if (vat > 0 && gross < net) || (vat < 0 && gross > net) {
		panic("scheduler: amounts: gross overflows int64")
	}
	return net, vat, gross
}

// mulDivRound returns a×b/c rounded half away from zero, for c > 0, without
// intermediate overflow.
func mulDivRound(a, b, c int64) int64 {
	neg := (a < 0) != (b < 0)
	hi, lo := bits.Mul64(absU(a), absU(b))
	uc := uint64(c)
	if hi >= uc {
		panic("scheduler: amounts: result overflows int64")
	}
	q, r := bits.Div64(hi, lo, uc)
	// r < c <= 2^63, so 2r cannot overflow uint64.
	if 2*r >= uc {
		q++
	}
	if q > math.MaxInt64 && !(neg && q == 1<<63) {
		panic("scheduler: amounts: result overflows int64")
	}
	if neg {
		return int64(-q)
	}
	return int64(q)
}

// absU is |v| as uint64, defined for math.MinInt64 too.
func absU(v int64) uint64 {
	if v < 0 {
		return -uint64(v)
	}
	return uint64(v)
}
