use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// mark 100; longs liquidated at 99 (100 notional), 98 (300), 95 (1,000).
fn hand_map() -> LiquidationMap {
    LiquidationMap {
        mark: 100.0,
        down: vec![
            MapLevel { price: 95.0, notional: 1_000.0 },
            MapLevel { price: 99.0, notional: 100.0 },
            MapLevel { price: 98.0, notional: 300.0 },
        ],
        up: vec![MapLevel { price: 101.0, notional: 100.0 }],
    }
}

/// A linear book: 100 notional moves the price 1%.
fn linear_book() -> Depth {
    Depth::Book(vec![(0.01, 100.0)])
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// Shock 1%: 99 liquidates (100) -> impact 1% -> move 1 - 0.99 x 0.99 = 1.99%, short of 98: amplification 1.99.
/// Shock 1.5%: 99 -> move 2.485% -> 98 (400) -> impact 4% -> 5.44% -> 95 (1,400) -> 14% ->
/// 1 - 0.985 x 0.86 = 15.29%: amplification 10.193.
#[test]
fn hand_computed_book_fixed_points_and_amplification() {
    let c = CascadeConfig::default();
    let small = cascade(&hand_map(), &linear_book(), Direction::Down, 0.01, &c).unwrap();
    assert!(close(small.final_move, 0.0199), "{small:?}");
    assert!(close(small.amplification, 1.99));
    assert!(close(small.liquidated_notional, 100.0));
    assert_eq!(small.rounds, 1);
    let big = cascade(&hand_map(), &linear_book(), Direction::Down, 0.015, &c).unwrap();
    assert!(close(big.final_move, 1.0 - 0.985 * 0.86), "{big:?}");
    assert!(close(big.amplification, (1.0 - 0.985 * 0.86) / 0.015));
    assert!(close(big.liquidated_notional, 1_400.0));
    assert_eq!(big.rounds, 3);
    let none = cascade(&hand_map(), &linear_book(), Direction::Down, 0.005, &c).unwrap();
    assert!(close(none.final_move, 0.005) && close(none.amplification, 1.0) && none.liquidated_notional == 0.0);
    let up = cascade(&hand_map(), &linear_book(), Direction::Up, 0.01, &c).unwrap();
    assert!(close(up.final_move, 1.01 * 1.01 - 1.0), "{up:?}");
}

/// Square-root depth: 250,000 at 99 against V = 1e6 at 4%/day is 2% impact: 1% -> 2.98%, which stops
/// just short of the level at 97.
#[test]
fn square_root_depth_fixed_point() {
    let map = LiquidationMap {
        mark: 100.0,
        down: vec![MapLevel { price: 99.0, notional: 250_000.0 }, MapLevel { price: 97.0, notional: 1e9 }],
        up: vec![],
    };
    let depth = Depth::SquareRoot(ImpactModel::new(1.0, 0.04, 1e6).unwrap());
    let c = cascade(&map, &depth, Direction::Down, 0.01, &CascadeConfig::default()).unwrap();
    assert!(close(c.final_move, 1.0 - 0.99 * 0.98), "{c:?}");
    assert!(close(c.liquidated_notional, 250_000.0));
}

/// On the hand book the final move jumps once, between shocks 1% (1.99%) and 1.25% (to
/// 1 - 0.9875 x 0.86 = 15.075%): one cliff, triggered at 98.75.
#[test]
fn the_cliff_is_where_amplification_jumps() {
    let (curve, found) = cliffs(&hand_map(), &linear_book(), Direction::Down, 0.0025, 0.05, 0.02).unwrap();
    assert_eq!(curve.len(), 20);
    assert_eq!(found.len(), 1, "{found:?}");
    let cliff = found[0];
    assert!(close(cliff.shock, 0.0125) && close(cliff.trigger_price, 98.75), "{cliff:?}");
    assert!(close(cliff.final_price, 100.0 * 0.9875 * 0.86));
    assert!(close(cliff.amplification_before, 1.99));
    assert!(cliff.amplification_after > 12.0);
    assert!(close(near_share(&hand_map(), Direction::Down, 0.02), 400.0 / 1_400.0));
}

/// The iteration's result is a fixed point, and no smaller move at or above the shock is one
/// (least fixed point), on random maps and books.
#[test]
fn iteration_finds_the_least_fixed_point_on_random_maps() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for _ in 0..200 {
        let levels = rng.gen_range(1..30);
        let down: Vec<MapLevel> = (0..levels)
            .map(|_| MapLevel { price: 100.0 * (1.0 - rng.gen_range(0.0..0.5)), notional: rng.gen_range(0.0..500.0) })
            .collect();
        let map = LiquidationMap { mark: 100.0, down, up: vec![] };
        let depth = Depth::Book(vec![(0.01, rng.gen_range(50.0..500.0)), (0.2, rng.gen_range(2_000.0..20_000.0))]);
        let shock = rng.gen_range(0.001..0.1);
        let c = cascade(&map, &depth, Direction::Down, shock, &CascadeConfig::default()).unwrap();
        let g = |m: f64| total_move(Direction::Down, shock, depth.impact(reached(&map, Direction::Down, m)), 0.99);
        assert!((g(c.final_move) - c.final_move).abs() < 1e-12, "not a fixed point: {c:?}");
        let n = 2_000;
        for k in 0..n {
            let m = shock + (c.final_move - shock) * k as f64 / n as f64;
            if m < c.final_move - 1e-9 {
                assert!(g(m) > m, "a smaller fixed point at {m} below {c:?}");
            }
        }
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let c = CascadeConfig::default();
    let e = cascade(&hand_map(), &Depth::Book(vec![(0.01, 100.0), (0.005, 200.0)]), Direction::Down, 0.01, &c);
    assert!(matches!(e, Err(ModelError::InvalidParameter { name: "depth_book", .. })), "{e:?}");
    assert!(cascade(&hand_map(), &linear_book(), Direction::Down, 0.0, &c).is_err());
    let mut bad = hand_map();
    bad.down[0].notional = f64::NAN;
    assert!(cascade(&bad, &linear_book(), Direction::Down, 0.01, &c).is_err());
    assert!(cliffs(&hand_map(), &linear_book(), Direction::Down, 0.0, 0.1, 0.01).is_err());
}
