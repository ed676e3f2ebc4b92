//! Geographic anomalies (PRACTICES §10): a sign-in from a country the user has never signed in
//! from, and *impossible travel*, two sign-ins farther apart than anyone could travel in the
//! time between them.
//!
//! This module only reasons about places; it never reads a database or a clock. The server
//! looks addresses up in the operator's GeoIP file (`portcullis_server::geoip`) and hands the
//! resulting [`Place`]s here together with the times of the sign-ins.
//!
//! IP geolocation is a guess with an error bar, so the rules lean towards silence: a place
//! without coordinates never counts as travel, both accuracy radii are subtracted before a
//! speed is computed, and hops inside one network (a mobile carrier handing out addresses from
//! one block whose geolocation jumps around) are ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The mean Earth radius (IUGG), in kilometres: the sphere that best fits the ellipsoid, which
/// keeps the haversine error below about 0.5 %, far inside any geolocation error.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Elapsed times shorter than this are treated as this long, so that two sign-ins in the same
/// second do not divide a small distance by almost zero and report an absurd speed.
pub const MIN_ELAPSED_SECS: i64 = 60;

/// What an IP-geolocation database says about one address. Every field is optional: a country
/// database has no coordinates, and many addresses are not in the database at all.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Place {
    /// ISO 3166-1 alpha-2 code, upper case (`"FR"`).
    pub country: Option<String>,
    /// Coordinates with their accuracy radius; only city-level databases have them.
    pub location: Option<Location>,
    /// The database network the address fell in (`"203.0.113.0/24"`): two sign-ins in the same
    /// network are the same place as far as the database can tell.
    pub network: Option<String>,
}

/// A point on the Earth with the radius, in kilometres, within which the database believes the
/// address really is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Location {
    /// Degrees, −90 to 90.
    pub latitude: f64,
    /// Degrees, −180 to 180.
    pub longitude: f64,
    /// Kilometres; 0 when the database claims a precise point.
    pub accuracy_km: f64,
}

/// One sign-in seen from somewhere.
#[derive(Clone, Debug, PartialEq)]
pub struct Sighting {
    /// Unix seconds.
    pub at: i64,
    pub place: Place,
    /// The client address as text (`"198.51.100.7"`), used for the network when the database
    /// gave none.
    pub address: String,
}

/// A journey no one could have made: the least distance covered, the time it had, and the
/// speed that would take.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Travel {
    /// Kilometres between the two places once both accuracy radii are taken off: the least the
    /// user must have covered.
    pub km: f64,
    /// Hours between the two sightings, at least [`MIN_ELAPSED_SECS`].
    pub hours: f64,
    /// `km / hours`.
    pub kmh: f64,
}

/// The great-circle distance between two points in kilometres (haversine formula on a sphere
/// of [`EARTH_RADIUS_KM`]). The accuracy radii are ignored here; [`impossible_travel`] applies
/// them.
pub fn distance_km(a: &Location, b: &Location) -> f64 {
    let (lat1, lat2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let d_lat = lat2 - lat1;
    let d_lon = (b.longitude - a.longitude).to_radians();
    let h = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lon / 2.0).sin().powi(2);
    // Rounding can push `h` a hair outside [0, 1] for antipodal points, where `sqrt(1 - h)`
    // would be NaN.
    let h = h.clamp(0.0, 1.0);
    2.0 * EARTH_RADIUS_KM * h.sqrt().atan2((1.0 - h).sqrt())
}

/// The travel between two sign-ins if it was faster than `max_kmh`, `None` when it was
/// plausible or cannot be judged.
///
/// `None` when either place has no coordinates (a country database, an unknown address), when
/// both sightings are in the same network (see [`Place::network`]; without one, the
/// [`network_of`] their addresses), or when the two accuracy circles touch or overlap (the user may
/// not have moved at all). Otherwise the speed is the distance between the circles divided by
/// the time between the sightings, taken as at least [`MIN_ELAPSED_SECS`]; the order of the
/// two sightings does not matter.
pub fn impossible_travel(prev: &Sighting, next: &Sighting, max_kmh: f64) -> Option<Travel> {
    let (a, b) = (prev.place.location?, next.place.location?);
    if let (Some(x), Some(y)) = (sighting_network(prev), sighting_network(next)) {
        if x == y {
            return None;
        }
    }
    let km = distance_km(&a, &b) - a.accuracy_km.max(0.0) - b.accuracy_km.max(0.0);
    // A NaN or infinity from broken coordinates is no evidence either.
    if !km.is_finite() || km <= 0.0 {
        return None;
    }
    let secs = next
        .at
        .abs_diff(prev.at)
        .max(MIN_ELAPSED_SECS.unsigned_abs());
    let hours = secs as f64 / 3600.0;
    let kmh = km / hours;
    (kmh > max_kmh).then_some(Travel { km, hours, kmh })
}

/// The network a sighting counts as: the database's, else the one [`network_of`] its address,
/// else none (an address that does not parse is compared with nothing).
fn sighting_network(s: &Sighting) -> Option<String> {
    match &s.place.network {
        Some(n) => Some(n.clone()),
        None => s.address.parse::<IpAddr>().ok().map(network_of),
    }
}

/// Whether `country` is missing from the countries the user has signed in from before.
///
/// Codes are compared without regard to case, because they come from databases that disagree
/// on it. An empty code (no country known) is never new: not knowing where a sign-in came from
/// is not evidence that it came from somewhere new.
pub fn is_new_country(seen: &[String], country: &str) -> bool {
    let country = country.trim();
    !country.is_empty() && !seen.iter().any(|s| s.trim().eq_ignore_ascii_case(country))
}

/// The network an address belongs to for "new network" detection when no database (or no ASN)
/// says better: the IPv4 /24 (`"198.51.100.0/24"`), or the IPv6 /48 (`"2001:db8:1::/48"`), the
/// block usually assigned to one site. An IPv4-mapped IPv6 address (`::ffff:198.51.100.7`, what
/// a dual-stack listener reports for an IPv4 client) is the IPv4 address it carries.
pub fn network_of(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => v4_network(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_network(v4),
            None => {
                let s = v6.segments();
                let net = Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
                format!("{net}/48")
            }
        },
    }
}

fn v4_network(v4: Ipv4Addr) -> String {
    let [a, b, c, _] = v4.octets();
    format!("{a}.{b}.{c}.0/24")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARIS: Location = Location {
        latitude: 48.8566,
        longitude: 2.3522,
        accuracy_km: 0.0,
    };
    const NEW_YORK: Location = Location {
        latitude: 40.7128,
        longitude: -74.0060,
        accuracy_km: 0.0,
    };
    const LONDON: Location = Location {
        latitude: 51.5074,
        longitude: -0.1278,
        accuracy_km: 0.0,
    };
    const SYDNEY: Location = Location {
        latitude: -33.8688,
        longitude: 151.2093,
        accuracy_km: 0.0,
    };

    fn at(loc: Location, radius: f64) -> Location {
        Location {
            accuracy_km: radius,
            ..loc
        }
    }

    fn sighting(at: i64, loc: Option<Location>, network: Option<&str>, address: &str) -> Sighting {
        Sighting {
            at,
            place: Place {
                country: None,
                location: loc,
                network: network.map(str::to_owned),
            },
            address: address.to_owned(),
        }
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn distances_between_real_cities() {
        let d = distance_km(&PARIS, &NEW_YORK);
        assert!(close(d, 5837.0, 5.0), "Paris-New York {d}");
        let d = distance_km(&PARIS, &LONDON);
        assert!(close(d, 344.0, 3.0), "Paris-London {d}");
        let d = distance_km(&LONDON, &SYDNEY);
        assert!(close(d, 16_994.0, 15.0), "London-Sydney {d}");
        // Symmetric, zero on the same point, and the radii play no part.
        assert_eq!(
            distance_km(&NEW_YORK, &PARIS),
            distance_km(&PARIS, &NEW_YORK)
        );
        assert_eq!(distance_km(&PARIS, &PARIS), 0.0);
        assert_eq!(
            distance_km(&at(PARIS, 500.0), &NEW_YORK),
            distance_km(&PARIS, &NEW_YORK)
        );
    }

    #[test]
    fn antipodes_are_half_the_circumference() {
        let a = Location {
            latitude: 0.0,
            longitude: 0.0,
            accuracy_km: 0.0,
        };
        let b = Location {
            longitude: 180.0,
            ..a
        };
        let d = distance_km(&a, &b);
        assert!(d.is_finite());
        assert!(
            close(d, std::f64::consts::PI * EARTH_RADIUS_KM, 1e-6),
            "{d}"
        );
        let south = Location {
            latitude: -90.0,
            ..a
        };
        let north = Location {
            latitude: 90.0,
            ..a
        };
        assert!(close(distance_km(&north, &south), d, 1e-6));
    }

    #[test]
    fn paris_to_new_york_in_an_hour_is_impossible() {
        let prev = sighting(0, Some(PARIS), Some("192.0.2.0/24"), "192.0.2.1");
        let next = sighting(
            3600,
            Some(NEW_YORK),
            Some("198.51.100.0/24"),
            "198.51.100.1",
        );
        let t = impossible_travel(&prev, &next, 1000.0).expect("impossible");
        assert!(close(t.km, 5837.0, 5.0), "{t:?}");
        assert_eq!(t.hours, 1.0);
        assert!(close(t.kmh, t.km, 1e-9));
        // The order of the sightings does not matter.
        assert_eq!(impossible_travel(&next, &prev, 1000.0), Some(t));
    }

    #[test]
    fn a_plausible_flight_is_not_reported() {
        // Eight hours for 5,837 km is about 730 km/h: an airliner.
        let prev = sighting(0, Some(PARIS), Some("192.0.2.0/24"), "192.0.2.1");
        let next = sighting(
            8 * 3600,
            Some(NEW_YORK),
            Some("198.51.100.0/24"),
            "198.51.100.1",
        );
        assert_eq!(impossible_travel(&prev, &next, 1000.0), None);
        // The same trip is impossible for a limit below its speed.
        let t = impossible_travel(&prev, &next, 700.0).expect("faster than 700 km/h");
        assert!(close(t.kmh, 5837.0 / 8.0, 1.0), "{t:?}");
        // The limit itself is not exceeded.
        let exact = t.kmh;
        assert_eq!(impossible_travel(&prev, &next, exact), None);
    }

    #[test]
    fn accuracy_radii_are_subtracted() {
        let paris = at(PARIS, 1000.0);
        let new_york = at(NEW_YORK, 2000.0);
        let prev = sighting(0, Some(paris), Some("192.0.2.0/24"), "192.0.2.1");
        let next = sighting(
            3600,
            Some(new_york),
            Some("198.51.100.0/24"),
            "198.51.100.1",
        );
        let t = impossible_travel(&prev, &next, 100.0).expect("still far");
        let full = distance_km(&PARIS, &NEW_YORK);
        assert!(close(t.km, full - 3000.0, 1e-9), "{t:?}");
        // At 3,000 km/h the 2,837 km left take less than an hour: not impossible.
        assert_eq!(impossible_travel(&prev, &next, 3000.0), None);
    }

    #[test]
    fn overlapping_accuracy_circles_are_no_travel() {
        // Paris and London are 344 km apart; radii of 200 and 150 km overlap.
        let prev = sighting(0, Some(at(PARIS, 200.0)), Some("192.0.2.0/24"), "192.0.2.1");
        let next = sighting(
            1,
            Some(at(LONDON, 150.0)),
            Some("198.51.100.0/24"),
            "198.51.100.1",
        );
        assert_eq!(impossible_travel(&prev, &next, 0.0), None);
        // Circles that exactly touch count as no distance either.
        let d = distance_km(&PARIS, &LONDON);
        let next = sighting(
            1,
            Some(at(LONDON, d - 200.0)),
            Some("198.51.100.0/24"),
            "198.51.100.1",
        );
        assert_eq!(impossible_travel(&prev, &next, 0.0), None);
        // A negative radius (a broken record) does not add distance.
        let prev = sighting(0, Some(at(PARIS, -5000.0)), Some("192.0.2.0/24"), "");
        let next = sighting(3600, Some(LONDON), Some("198.51.100.0/24"), "");
        let t = impossible_travel(&prev, &next, 0.0).expect("some travel");
        assert!(close(t.km, d, 1e-9), "{t:?}");
    }

    #[test]
    fn hops_within_one_network_are_skipped() {
        let prev = sighting(0, Some(PARIS), Some("203.0.113.0/24"), "203.0.113.5");
        let next = sighting(60, Some(SYDNEY), Some("203.0.113.0/24"), "203.0.113.77");
        assert_eq!(impossible_travel(&prev, &next, 1000.0), None);
        // Without database networks, the addresses' own /24 decides.
        let prev = sighting(0, Some(PARIS), None, "203.0.113.5");
        let next = sighting(60, Some(SYDNEY), None, "203.0.113.77");
        assert_eq!(impossible_travel(&prev, &next, 1000.0), None);
        let next = sighting(60, Some(SYDNEY), None, "203.0.114.77");
        assert!(impossible_travel(&prev, &next, 1000.0).is_some());
        // Different database networks inside one /24 are different networks.
        let prev = sighting(0, Some(PARIS), Some("203.0.113.0/25"), "203.0.113.5");
        let next = sighting(60, Some(SYDNEY), Some("203.0.113.128/25"), "203.0.113.200");
        assert!(impossible_travel(&prev, &next, 1000.0).is_some());
    }

    #[test]
    fn no_location_means_no_verdict() {
        let prev = sighting(0, None, Some("192.0.2.0/24"), "192.0.2.1");
        let next = sighting(1, Some(SYDNEY), Some("198.51.100.0/24"), "198.51.100.1");
        assert_eq!(impossible_travel(&prev, &next, 1.0), None);
        assert_eq!(impossible_travel(&next, &prev, 1.0), None);
    }

    #[test]
    fn elapsed_time_has_a_one_minute_floor() {
        let prev = sighting(1_000, Some(PARIS), Some("192.0.2.0/24"), "192.0.2.1");
        let d = distance_km(&PARIS, &LONDON);
        for elapsed in [0, 1, 59, 60] {
            let next = sighting(
                1_000 + elapsed,
                Some(LONDON),
                Some("198.51.100.0/24"),
                "198.51.100.1",
            );
            let t = impossible_travel(&prev, &next, 1000.0).expect("344 km in a minute");
            assert_eq!(t.hours, 60.0 / 3600.0, "elapsed {elapsed}");
            assert!(close(t.kmh, d * 60.0, 1e-6), "elapsed {elapsed}: {t:?}");
        }
        // Beyond a minute the real time counts.
        let next = sighting(1_120, Some(LONDON), Some("198.51.100.0/24"), "198.51.100.1");
        let t = impossible_travel(&prev, &next, 1000.0).expect("344 km in two minutes");
        assert!(close(t.kmh, d * 30.0, 1e-6), "{t:?}");
    }

    #[test]
    fn broken_coordinates_are_no_evidence() {
        let nan = Location {
            latitude: f64::NAN,
            ..PARIS
        };
        let prev = sighting(0, Some(nan), Some("192.0.2.0/24"), "192.0.2.1");
        let next = sighting(1, Some(SYDNEY), Some("198.51.100.0/24"), "198.51.100.1");
        assert_eq!(impossible_travel(&prev, &next, 0.0), None);
    }

    #[test]
    fn new_country_ignores_case() {
        let seen = vec!["FR".to_owned(), "us".to_owned()];
        assert!(!is_new_country(&seen, "FR"));
        assert!(!is_new_country(&seen, "fr"));
        assert!(!is_new_country(&seen, "US"));
        assert!(is_new_country(&seen, "DE"));
        assert!(is_new_country(&[], "DE"));
        assert!(!is_new_country(&seen, ""));
        assert!(!is_new_country(&[], " "));
    }

    #[test]
    fn networks_of_addresses() {
        let net = |s: &str| network_of(s.parse().expect("address"));
        assert_eq!(net("198.51.100.7"), "198.51.100.0/24");
        assert_eq!(net("198.51.100.255"), "198.51.100.0/24");
        assert_eq!(net("192.0.2.0"), "192.0.2.0/24");
        assert_eq!(net("2001:db8:1:2:3:4:5:6"), "2001:db8:1::/48");
        assert_eq!(net("2001:db8:1:ffff::1"), "2001:db8:1::/48");
        assert_eq!(net("2001:db8::1"), "2001:db8::/48");
        assert_eq!(net("::1"), "::/48");
        // IPv4-mapped is the IPv4 address; the other IPv6 forms stay IPv6.
        assert_eq!(net("::ffff:198.51.100.7"), "198.51.100.0/24");
        assert_eq!(net("::ffff:c633:6407"), "198.51.100.0/24");
        assert_eq!(net("64:ff9b::c633:6407"), "64:ff9b::/48");
    }
}
