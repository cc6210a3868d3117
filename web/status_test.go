package web

import (
	"bytes"
	"html/template"
	"math"
	"os"
	"regexp"
	"strconv"
	"testing"

	"mailflow/mailflow"
)

// familyColours reads each status family's card background and text
// colour from the stylesheet, the one place they are defined.
func familyColours(t *testing.T) map[string][2]string {
	t.Helper()
	css, err := os.ReadFile("assets/style.css")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\.family-(\w+)\s*\{\s*background:\s*#([0-9a-fA-F]{6});\s*color:\s*#([0-9a-fA-F]{6});`)
	out := map[string][2]string{}
	for _, m := range re.FindAllStringSubmatch(string(css), -1) {
		out[m[1]] = [2]string{m[2], m[3]}
	}
	for _, f := range mailflow.Families {
		if _, ok := out[f]; !ok {
			t.Fatalf("style.css has no .family-%s { background: #…; color: #…; } rule", f)
		}
	}
	return out
}

// TestStatusCardContrast: the text on every card meets WCAG 2.1 AA
// (4.5:1).
func TestStatusCardContrast(t *testing.T) {
	for f, c := range familyColours(t) {
		bg, fg := linearRGB(c[0]), linearRGB(c[1])
		if r := contrast(bg, fg); r < 4.5 {
			t.Errorf("family %s: text #%s on #%s has contrast %.2f:1 < 4.5:1", f, c[1], c[0], r)
		}
	}
}

// Thresholds for telling two cards apart by colour alone, in CIELAB.
const (
	// minDeutanDeltaE: CIE76 ΔE between two cards as a deuteranope sees
	// them (Viénot, Brettel and Mollon 1999). 20 is far above the ≈2.3
	// of a just noticeable difference: the cards differ at a glance.
	minDeutanDeltaE = 20
	// minGreyDeltaL: difference in lightness L* once printed or shown in
	// greyscale.
	minGreyDeltaL = 10
)

// TestStatusFamiliesDistinguishable: colour is never the only carrier.
// Every family has an icon of its own shape; and the colours alone still
// tell every pair apart for a deuteranope and in greyscale.
func TestStatusFamiliesDistinguishable(t *testing.T) {
	cols := familyColours(t)
	fams := mailflow.Families
	for i := range fams {
		for j := i + 1; j < len(fams); j++ {
			a, b := linearRGB(cols[fams[i]][0]), linearRGB(cols[fams[j]][0])
			if d := deltaE(lab(deuteranopia(a)), lab(deuteranopia(b))); d < minDeutanDeltaE {
				t.Errorf("%s and %s: ΔE %.1f for deuteranopia, want ≥ %d", fams[i], fams[j], d, minDeutanDeltaE)
			}
			if d := math.Abs(lab(a)[0] - lab(b)[0]); d < minGreyDeltaL {
				t.Errorf("%s and %s: ΔL* %.1f in greyscale, want ≥ %d", fams[i], fams[j], d, minGreyDeltaL)
			}
		}
	}

	// A distinct shape per family, and each shape draws something of
	// its own in the icon template.
	base, err := template.New("base.html").Funcs(pageFuncs(langDE)).ParseFS(assets, "assets/base.html")
	if err != nil {
		t.Fatal(err)
	}
	drawn := map[string]string{}
	for _, f := range fams {
		shape := familyShapes[f]
		if shape == "" {
			t.Fatalf("family %s has no shape", f)
		}
		var buf bytes.Buffer
		if err := base.ExecuteTemplate(&buf, "icon", shape); err != nil {
			t.Fatal(err)
		}
		svg := buf.String()
		body := regexp.MustCompile(`<svg[^>]*>(.*)</svg>`).FindStringSubmatch(svg)
		if body == nil || body[1] == "" {
			t.Errorf("family %s: icon %q draws nothing: %s", f, shape, svg)
			continue
		}
		if other, dup := drawn[body[1]]; dup {
			t.Errorf("families %s and %s share one icon", other, f)
		}
		drawn[body[1]] = f
	}
	for _, s := range mailflow.Statuses {
		v := newStatusView(langDE, s)
		if v.Shape != familyShapes[s.Family()] || v.Explanation == "" || v.Explanation == string(s) {
			t.Errorf("%s: card %+v lacks shape or explanation", s, v)
		}
		if en := newStatusView(langEN, s); en.Explanation == v.Explanation || en.Label == v.Label {
			t.Errorf("%s: no English label or explanation", s)
		}
	}
}

func linearRGB(hex string) [3]float64 {
	var c [3]float64
	for i := range c {
		v, _ := strconv.ParseUint(hex[2*i:2*i+2], 16, 8)
		x := float64(v) / 255
		if x <= 0.04045 {
			x /= 12.92
		} else {
			x = math.Pow((x+0.055)/1.055, 2.4)
		}
		c[i] = x
	}
	return c
}

// luminance is the WCAG 2.1 relative luminance.
func luminance(c [3]float64) float64 { return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2] }

func contrast(a, b [3]float64) float64 {
	la, lb := luminance(a), luminance(b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}

// deuteranopia simulates dichromacy without M cones in linear RGB
// (Viénot, Brettel and Mollon 1999).
func deuteranopia(c [3]float64) [3]float64 {
	return [3]float64{
		0.29031*c[0] + 0.70969*c[1],
		0.29031*c[0] + 0.70969*c[1],
		-0.02197*c[0] + 0.02197*c[1] + c[2],
	}
}

// lab converts linear sRGB to CIELAB (D65).
func lab(c [3]float64) [3]float64 {
	x := 0.4124*c[0] + 0.3576*c[1] + 0.1805*c[2]
	y := 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
	z := 0.0193*c[0] + 0.1192*c[1] + 0.9505*c[2]
	f := func(t float64) float64 {
		if t > 216.0/24389 {
			return math.Cbrt(t)
		}
		return (24389.0/27*t + 16) / 116
	}
	fx, fy, fz := f(x/0.95047), f(y), f(z/1.08883)
	return [3]float64{116*fy - 16, 500 * (fx - fy), 200 * (fy - fz)}
}

func deltaE(a, b [3]float64) float64 {
	return math.Sqrt((a[0]-b[0])*(a[0]-b[0]) + (a[1]-b[1])*(a[1]-b[1]) + (a[2]-b[2])*(a[2]-b[2]))
}

// The checks must be able to fail: a red and a green that differ only
// along the axis deuteranopes do not see, at about equal lightness.
func TestDeuteranopiaCheckCanFail(t *testing.T) {
	red := [3]float64{0.5, 0.1, 0.05}
	green := [3]float64{0.1, (0.29031*0.5 + 0.70969*0.1 - 0.29031*0.1) / 0.70969, 0.05}
	if d := deltaE(lab(red), lab(green)); d < 50 {
		t.Fatalf("red and green differ by ΔE %.1f for normal vision", d)
	}
	if d := deltaE(lab(deuteranopia(red)), lab(deuteranopia(green))); d >= minDeutanDeltaE {
		t.Errorf("red and green: deuteranopia ΔE %.1f, the check would pass them", d)
	}
	if c := contrast(linearRGB("ffffff"), linearRGB("fbbf24")); c >= 4.5 {
		t.Errorf("white on amber: contrast %.2f, the check would pass it", c)
	}
}
