//! Date-time values of the search language: ISO-8601 parsing, the canonical text form the store
//! keeps timestamps in, and the `between` presets.

use chrono::{DateTime, Duration, Months, NaiveTime, SecondsFormat, Utc};

/// Relative ranges of `between` / `notBetween` (`{"preset": …}`), resolved in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatePreset {
    Today,
    Tomorrow,
    Yesterday,
    LastDay,
    LastWeek,
    Last2Weeks,
    LastMonth,
    Last3Months,
    Last6Months,
    Last12Months,
    Last2Years,
    Last3Years,
    NextDay,
    NextWeek,
    Next2Weeks,
    NextMonth,
    Next3Months,
    Next6Months,
    Next12Months,
}

impl DatePreset {
    pub const ALL: [DatePreset; 19] = [
        DatePreset::Today,
        DatePreset::Tomorrow,
        DatePreset::Yesterday,
        DatePreset::LastDay,
        DatePreset::LastWeek,
        DatePreset::Last2Weeks,
        DatePreset::LastMonth,
        DatePreset::Last3Months,
        DatePreset::Last6Months,
        DatePreset::Last12Months,
        DatePreset::Last2Years,
        DatePreset::Last3Years,
        DatePreset::NextDay,
        DatePreset::NextWeek,
        DatePreset::Next2Weeks,
        DatePreset::NextMonth,
        DatePreset::Next3Months,
        DatePreset::Next6Months,
        DatePreset::Next12Months,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DatePreset::Today => "today",
            DatePreset::Tomorrow => "tomorrow",
            DatePreset::Yesterday => "yesterday",
            DatePreset::LastDay => "lastDay",
            DatePreset::LastWeek => "lastWeek",
            DatePreset::Last2Weeks => "last2Weeks",
            DatePreset::LastMonth => "lastMonth",
            DatePreset::Last3Months => "last3Months",
            DatePreset::Last6Months => "last6Months",
            DatePreset::Last12Months => "last12Months",
            DatePreset::Last2Years => "last2Years",
            DatePreset::Last3Years => "last3Years",
            DatePreset::NextDay => "nextDay",
            DatePreset::NextWeek => "nextWeek",
            DatePreset::Next2Weeks => "next2Weeks",
            DatePreset::NextMonth => "nextMonth",
            DatePreset::Next3Months => "next3Months",
            DatePreset::Next6Months => "next6Months",
            DatePreset::Next12Months => "next12Months",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The inclusive `(from, to)` range at `now`.
    ///
    /// `today` / `tomorrow` / `yesterday` are whole UTC calendar days (00:00:00.000 to
    /// 23:59:59.999). The `last…` presets end at `now` and the `next…` presets start at `now`;
    /// their lengths follow Port's docs: a day, 7 / 14 / 30 / 90 / 180 / 365 days, and 2 or 3
    /// calendar years.
    pub fn resolve(self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let midnight = now.date_naive().and_time(NaiveTime::MIN).and_utc();
        let day = |offset: i64| {
            let start = midnight + Duration::days(offset);
            (start, start + Duration::days(1) - Duration::milliseconds(1))
        };
        let back = |days: i64| (now - Duration::days(days), now);
        let ahead = |days: i64| (now, now + Duration::days(days));
        let years_back = |years: u32| {
            let from = now.checked_sub_months(Months::new(12 * years));
            (from.unwrap_or(now - Duration::days(365 * i64::from(years))), now)
        };
        match self {
            DatePreset::Today => day(0),
            DatePreset::Tomorrow => day(1),
            DatePreset::Yesterday => day(-1),
            DatePreset::LastDay => back(1),
            DatePreset::LastWeek => back(7),
            DatePreset::Last2Weeks => back(14),
            DatePreset::LastMonth => back(30),
            DatePreset::Last3Months => back(90),
            DatePreset::Last6Months => back(180),
            DatePreset::Last12Months => back(365),
            DatePreset::Last2Years => years_back(2),
            DatePreset::Last3Years => years_back(3),
            DatePreset::NextDay => ahead(1),
            DatePreset::NextWeek => ahead(7),
            DatePreset::Next2Weeks => ahead(14),
            DatePreset::NextMonth => ahead(30),
            DatePreset::Next3Months => ahead(90),
            DatePreset::Next6Months => ahead(180),
            DatePreset::Next12Months => ahead(365),
        }
    }
}

/// Parse an ISO-8601 / RFC 3339 date-time with an offset (`2024-01-31T10:00:00Z`,
/// `2024-01-31T12:00:00.5+02:00`); also accepts a lowercase `t`/`z` and a space separator.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|d| d.with_timezone(&Utc))
}

/// The canonical text form of a timestamp, `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds): the
/// form the store keeps meta timestamps in, which sorts and compares correctly as text.
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
