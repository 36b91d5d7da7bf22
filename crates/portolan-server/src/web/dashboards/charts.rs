//! Chart geometry for the dashboard's SVG: pie slices as path data, lines as polyline points,
//! bars as widths. Only numbers are computed here; the markup is `dashboard.html`'s.

use serde::Serialize;

/// Slice fills, in order (the last one is "Other"'s grey).
pub(super) const PALETTE: &[&str] = &[
    "#4c6ef5", "#15aabf", "#fd7e14", "#7950f2", "#e64980", "#fab005", "#40c057", "#fa5252", "#228be6", "#82c91e",
    "#be4bdb", "#12b886", "#f76707", "#5c7cfa",
];
const OTHER_FILL: &str = "#adb5bd";

/// One slice of a pie chart.
#[derive(Debug, Serialize)]
pub(super) struct Slice {
    pub label: String,
    pub count: u64,
    /// Share of the whole, rounded to one decimal ("42.5").
    pub percent: String,
    /// SVG path data in the 200×200 box.
    pub d: String,
    pub fill: &'static str,
}

/// Pie slices for `(label, count)` parts (the last is "Other" when `other`), on a circle of
/// radius 90 centred in a 200×200 box. A part that is the whole is a full circle.
pub(super) fn pie(parts: &[(String, u64)], other: bool) -> Vec<Slice> {
    let total: u64 = parts.iter().map(|p| p.1).sum();
    if total == 0 {
        return Vec::new();
    }
    let (cx, cy, r) = (100.0_f64, 100.0_f64, 90.0_f64);
    let mut angle = -std::f64::consts::FRAC_PI_2;
    let last = parts.len().saturating_sub(1);
    parts
        .iter()
        .enumerate()
        .map(|(i, (label, count))| {
            let share = *count as f64 / total as f64;
            let end = angle + share * std::f64::consts::TAU;
            let d = if *count == total {
                format!("M {cx} {} A {r} {r} 0 1 1 {cx} {} A {r} {r} 0 1 1 {cx} {} Z", cy - r, cy + r, cy - r)
            } else {
                let (x0, y0) = (cx + r * angle.cos(), cy + r * angle.sin());
                let (x1, y1) = (cx + r * end.cos(), cy + r * end.sin());
                let large = u8::from(share > 0.5);
                format!("M {cx} {cy} L {x0:.2} {y0:.2} A {r} {r} 0 {large} 1 {x1:.2} {y1:.2} Z")
            };
            angle = end;
            let fill = if other && i == last { OTHER_FILL } else { PALETTE[i % PALETTE.len()] };
            Slice { label: label.clone(), count: *count, percent: format!("{:.1}", share * 100.0), d, fill }
        })
        .collect()
}

/// A line of a line chart.
#[derive(Debug, Serialize)]
pub(super) struct Line {
    pub label: String,
    /// `x,y` pairs in the 600×200 plot.
    pub points: String,
    pub stroke: &'static str,
    /// Each point: its position and what it says (for the dots and their tooltips).
    pub dots: Vec<Dot>,
}

#[derive(Debug, Serialize)]
pub(super) struct Dot {
    pub x: String,
    pub y: String,
    pub title: String,
}

/// Plot width and height (the SVG's viewBox adds margins for the axis labels).
pub(super) const PLOT_W: f64 = 600.0;
pub(super) const PLOT_H: f64 = 200.0;

/// A series of a line chart: its label and its points (unix milliseconds, value, tooltip).
pub(super) type Series = (String, Vec<(i64, f64, String)>);

/// Scales series of `(unix seconds, value, tooltip)` onto the plot: time on x from the
/// earliest to the latest point, values on y from `lo` to `hi` (bottom to top). One point in
/// time sits in the middle.
pub(super) fn lines(series: Vec<Series>, lo: f64, hi: f64) -> Vec<Line> {
    let times = series.iter().flat_map(|s| s.1.iter().map(|p| p.0));
    let (t0, t1) = times.fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
    let span = (t1 - t0).max(0) as f64;
    let range = if hi > lo { hi - lo } else { 1.0 };
    series
        .into_iter()
        .enumerate()
        .map(|(i, (label, pts))| {
            let n = pts.len();
            let dots: Vec<Dot> = pts
                .into_iter()
                .enumerate()
                .map(|(k, (t, v, title))| {
                    // All at one instant (writes within a millisecond): spread in order.
                    let x = match (span > 0.0, n) {
                        (true, _) => (t - t0) as f64 / span * PLOT_W,
                        (false, 1) => PLOT_W / 2.0,
                        (false, _) => k as f64 / (n - 1) as f64 * PLOT_W,
                    };
                    let y = PLOT_H - (v - lo) / range * PLOT_H;
                    Dot { x: format!("{x:.1}"), y: format!("{y:.1}"), title }
                })
                .collect();
            let points = dots.iter().map(|d| format!("{},{}", d.x, d.y)).collect::<Vec<_>>().join(" ");
            Line { label, points, stroke: PALETTE[i % PALETTE.len()], dots }
        })
        .collect()
}

/// A bar of a bar list (scorecard levels): its width in a 300-wide track.
#[derive(Debug, Serialize)]
pub(super) struct Bar {
    pub label: String,
    pub count: u64,
    pub width: String,
    pub fill: &'static str,
}

pub(super) fn bars(parts: &[(String, u64)]) -> Vec<Bar> {
    let max = parts.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    parts
        .iter()
        .enumerate()
        .map(|(i, (label, count))| Bar {
            label: label.clone(),
            count: *count,
            width: format!("{:.1}", *count as f64 / max * 300.0),
            fill: PALETTE[i % PALETTE.len()],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pie_slices_share_the_circle_and_a_whole_is_a_full_circle() {
        let s = pie(&[("a".into(), 3), ("b".into(), 1)], false);
        assert_eq!((s[0].percent.as_str(), s[1].percent.as_str()), ("75.0", "25.0"));
        // 75 %: the large-arc flag is set; the slice starts at the top (100, 10).
        assert!(s[0].d.starts_with("M 100 100 L 100.00 10.00 A 90 90 0 1 1"), "{}", s[0].d);
        assert!(s[1].d.contains(" 0 0 1 "), "{}", s[1].d);
        let whole = pie(&[("only".into(), 5)], false);
        assert_eq!(whole[0].percent, "100.0");
        assert!(whole[0].d.matches(" A ").count() == 2, "{}", whole[0].d);
        assert!(pie(&[("none".into(), 0)], false).is_empty());
        let other = pie(&[("a".into(), 1), ("Other".into(), 1)], true);
        assert_eq!(other[1].fill, OTHER_FILL);
    }

    #[test]
    fn lines_scale_time_and_value_onto_the_plot() {
        let l = lines(
            vec![("cpu".into(), vec![(10, 0.0, "a".into()), (20, 5.0, "b".into()), (30, 10.0, "c".into())])],
            0.0,
            10.0,
        );
        assert_eq!(l[0].points, "0.0,200.0 300.0,100.0 600.0,0.0");
        let one = lines(vec![("x".into(), vec![(5, 1.0, String::new())])], 1.0, 1.0);
        assert_eq!(one[0].points, "300.0,200.0");
        let same = lines(
            vec![("x".into(), vec![(5, 0.0, String::new()), (5, 1.0, String::new()), (5, 2.0, String::new())])],
            0.0,
            2.0,
        );
        assert_eq!(same[0].points, "0.0,200.0 300.0,100.0 600.0,0.0", "one instant: spread in order");
    }

    #[test]
    fn bars_are_relative_to_the_largest() {
        let b = bars(&[("Gold".into(), 4), ("Basic".into(), 1)]);
        assert_eq!((b[0].width.as_str(), b[1].width.as_str()), ("300.0", "75.0"));
    }
}
