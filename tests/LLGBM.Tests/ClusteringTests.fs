module LLGBM.Tests.ClusteringTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open LLGBM.Algebra

/// The silhouette score straight from its definition (Rousseeuw 1987), one point at a time with lists, for any distance.
let naiveSilhouette (distance: float32[] -> float32[] -> float) (points: float32[][]) (labels: string[]) =
    let indexed = List.zip (List.ofArray points) (List.ofArray labels)

    let meanDistance (p: float32[]) (others: (float32[] * string) list) =
        others |> List.averageBy (fun (q, _) -> distance p q)

    indexed
    |> List.mapi (fun i (p, label) ->
        let own =
            indexed
            |> List.indexed
            |> List.filter (fun (j, (_, l)) -> j <> i && l = label)
            |> List.map snd

        if own.IsEmpty then
            0.0
        else
            let a = meanDistance p own

            let b =
                labels
                |> Array.distinct
                |> Array.filter (fun l -> l <> label)
                |> Array.map (fun l -> meanDistance p (indexed |> List.filter (fun (_, m) -> m = l)))
                |> Array.min

            if max a b = 0.0 then 0.0 else (b - a) / max a b)
    |> List.average

/// 3..12 points of dimension 1..6 on a grid of 1/4 in [-2, 2], each with one of 2..4 labels, at least two distinct.
let private labelledPoints: Gen<float32[][] * string[]> =
    gen {
        let! n = Gen.choose (3, 12)
        let! dim = Gen.choose (1, 6)
        let! k = Gen.choose (2, 4)

        let! points =
            Gen.choose (-8, 8)
            |> Gen.map (fun i -> float32 i / 4f)
            |> Gen.arrayOfLength dim
            |> Gen.arrayOfLength n

        let! labels =
            Gen.choose (0, k - 1) |> Gen.map (fun c -> $"d{c}") |> Gen.arrayOfLength n

        return points, labels
    }
    |> Gen.where (fun (_, labels) -> (Array.distinct labels).Length >= 2)

/// `labelledPoints` with a permutation of the points and a power-of-two scale (1/8 .. 8) per point.
let private withPermutationAndScales =
    gen {
        let! points, labels = labelledPoints
        let! keys = Gen.choose (0, 1_000_000) |> Gen.arrayOfLength points.Length
        let! exponents = Gen.choose (-3, 3) |> Gen.arrayOfLength points.Length
        let permutation = Array.init points.Length id |> Array.sortBy (fun i -> keys[i], i)
        return points, labels, permutation, exponents |> Array.map (fun e -> MathF.Pow(2f, float32 e))
    }

/// k well-separated clusters (2..4): cluster c holds 2..5 positive multiples (0.5..5) of the unit vector e_c plus noise
/// of at most 1e-3 per coordinate, in dimension k..k+3.
let private separatedClusters =
    gen {
        let! k = Gen.choose (2, 4)
        let! extra = Gen.choose (0, 3)
        let dim = k + extra
        let! sizes = Gen.choose (2, 5) |> Gen.arrayOfLength k

        let point c =
            gen {
                let! scale = Gen.choose (5, 50) |> Gen.map (fun s -> float32 s / 10f)

                let! noise =
                    Gen.choose (-100, 100)
                    |> Gen.map (fun v -> float32 v * 1e-5f)
                    |> Gen.arrayOfLength dim

                return Array.init dim (fun i -> scale * ((if i = c then 1f else 0f) + noise[i]))
            }

        let! clusters =
            [
                for c in 0 .. k - 1 -> point c |> Gen.arrayOfLength sizes[c] |> Gen.map (fun ps -> ps, c)
            ]
            |> Gen.collectToArray id

        let points = clusters |> Array.collect fst

        let labels =
            clusters |> Array.collect (fun (ps, c) -> Array.create ps.Length $"d{c}")

        return points, labels
    }

[<Tests>]
let tests =
    testList "Clustering" [
        test "silhouette by hand: five points on a line under Euclidean distance" {
            // a: 0, 1; b: 4, 5, 7.
            // x=0: a = 1, b = (4+5+7)/3 = 16/3, s = 13/16;  x=1: a = 1, b = (3+4+6)/3 = 13/3, s = 10/13
            // x=4: a = (1+3)/2 = 2, b = (4+3)/2 = 7/2, s = 3/7;  x=5: a = 3/2, b = 9/2, s = 2/3
            // x=7: a = 5/2, b = 13/2, s = 8/13
            let points = [| [| 0f; 0f |]; [| 1f; 0f |]; [| 4f; 0f |]; [| 5f; 0f |]; [| 7f; 0f |] |]
            let labels = [| "a"; "a"; "b"; "b"; "b" |]
            let wanted = (13.0 / 16.0 + 10.0 / 13.0 + 3.0 / 7.0 + 2.0 / 3.0 + 8.0 / 13.0) / 5.0
            Expect.floatClose Accuracy.veryHigh (Clustering.silhouetteWith Metrics.l2 points labels) wanted "mean"

            let samples =
                Clustering.silhouetteSamplesOfDistances (Clustering.distanceMatrix Metrics.l2 points) labels

            Expect.floatClose Accuracy.veryHigh samples[2] (3.0 / 7.0) "the point at 4"
        }

        test "silhouette by hand: five 2-D points under cosine distance" {
            // a: (1,0), (2,0); b: (0,1), (0,3), (1,1). c = 1 - 1/sqrt 2 is the distance from an axis to the diagonal.
            // (1,0), (2,0): a = 0 -> s = 1.  (0,1), (0,3): a = (0 + c)/2, b = 1 -> s = 1 - c/2.
            // (1,1): a = (c + c)/2 = c, b = (c + c)/2 = c -> s = 0.   Mean: (4 - c)/5.
            let points = [| [| 1f; 0f |]; [| 2f; 0f |]; [| 0f; 1f |]; [| 0f; 3f |]; [| 1f; 1f |] |]
            let labels = [| "a"; "a"; "b"; "b"; "b" |]
            let c = 1.0 - 1.0 / sqrt 2.0
            Expect.floatClose Accuracy.high (Clustering.silhouette points labels) ((4.0 - c) / 5.0) "mean"
            Expect.floatClose Accuracy.high (Clustering.cosineDistance [| 1f; 0f |] [| 1f; 1f |]) c "axis to diagonal"
            Expect.equal (Clustering.cosineDistance [| 1f; 0f |] [| -2f; 0f |]) 2.0 "opposite"
            Expect.equal (Clustering.cosineDistance [| 0f; 0f |] [| 1f; 0f |]) 1.0 "zero vector"
        }

        test "a point alone in its cluster scores 0; one label or mismatched lengths are errors" {
            let points = [| [| 0f; 0f |]; [| 1f; 0f |]; [| 9f; 0f |] |]

            let samples =
                Clustering.silhouetteSamplesOfDistances (Clustering.distanceMatrix Metrics.l2 points) [|
                    "a"
                    "a"
                    "b"
                |]

            Expect.equal samples[2] 0.0 "singleton"
            // x=0: a = 1, b = 9 -> 8/9
            Expect.floatClose Accuracy.veryHigh samples[0] (8.0 / 9.0) "its neighbour"

            Expect.throwsT<ArgumentException>
                (fun () -> Clustering.silhouette points [| "a"; "a"; "a" |] |> ignore)
                "one label"

            Expect.throwsT<ArgumentException>
                (fun () -> Clustering.silhouette points [| "a"; "b" |] |> ignore)
                "lengths"
        }

        testPropertyWithConfig
            (Generators.config 80)
            "agrees with the definition computed naively, Euclidean and cosine"
        <| Prop.forAll (Arb.fromGen labelledPoints) (fun (points, labels) ->
            Expect.floatClose
                Accuracy.veryHigh
                (Clustering.silhouetteWith Metrics.l2 points labels)
                (naiveSilhouette Metrics.l2 points labels)
                "Euclidean"

            Expect.floatClose
                Accuracy.veryHigh
                (Clustering.silhouette points labels)
                (naiveSilhouette Clustering.cosineDistance points labels)
                "cosine")

        testPropertyWithConfig (Generators.config 80) "lies in [-1, 1]; the cosine matrix is the pairwise distances"
        <| Prop.forAll (Arb.fromGen labelledPoints) (fun (points, labels) ->
            let s = Clustering.silhouette points labels
            Expect.isTrue (s >= -1.0 - 1e-12 && s <= 1.0 + 1e-12) $"silhouette {s} outside [-1, 1]"

            for v in Clustering.silhouetteSamplesOfDistances (Clustering.cosineDistanceMatrix points) labels do
                Expect.isTrue (v >= -1.0 - 1e-12 && v <= 1.0 + 1e-12) $"sample {v} outside [-1, 1]"

            let matrix = Clustering.cosineDistanceMatrix points

            for i in 0 .. points.Length - 1 do
                Expect.equal matrix[i, i] 0.0 "zero diagonal"

                for j in 0 .. points.Length - 1 do
                    if i <> j then
                        Expect.equal matrix[i, j] (Clustering.cosineDistance points[i] points[j]) $"d({i}, {j})")

        testPropertyWithConfig
            (Generators.config 80)
            "invariant to the order of the points and to positive rescaling under cosine"
        <| Prop.forAll (Arb.fromGen withPermutationAndScales) (fun (points, labels, permutation, scales) ->
            let s = Clustering.silhouette points labels
            let permuted = permutation |> Array.map (fun i -> points[i])
            let permutedLabels = permutation |> Array.map (fun i -> labels[i])
            Expect.floatClose Accuracy.veryHigh (Clustering.silhouette permuted permutedLabels) s "permuted"

            let scaled =
                Array.map2 (fun (p: float32[]) c -> p |> Array.map (fun v -> c * v)) points scales

            Expect.floatClose Accuracy.veryHigh (Clustering.silhouette scaled labels) s "rescaled")

        testPropertyWithConfig
            (Generators.config 60)
            "well-separated clusters in orthogonal directions score above 0.99"
        <| Prop.forAll (Arb.fromGen separatedClusters) (fun (points, labels) ->
            let s = Clustering.silhouette points labels
            Expect.isGreaterThan s 0.99 "silhouette"
            Expect.isLessThanOrEqual s 1.0 "at most 1")

        test "additivity by hand: a mixture equal to the sum of two orthogonal components" {
            let a =
                Clustering.additivity [| 1f; 1f; 0f |] [| [| 2f; 0f; 0f |]; [| 0f; 2f; 0f |] |]

            Expect.floatClose Accuracy.veryHigh a.WithSum 1.0 "cos(mix, sum)"
            Expect.floatClose Accuracy.veryHigh a.WithComponents[0] (1.0 / sqrt 2.0) "cos(mix, c1)"
            Expect.floatClose Accuracy.veryHigh a.WithComponents[1] (1.0 / sqrt 2.0) "cos(mix, c2)"
            Expect.floatClose Accuracy.veryHigh a.Gain (1.0 - 1.0 / sqrt 2.0) "gain"
            // mixture (1, 0, 1), components (1, 0, 0) and (0, 1, 0): sum (1, 1, 0), cos = 1/2; singles 1/sqrt 2 and 0
            let b =
                Clustering.additivity [| 1f; 0f; 1f |] [| [| 1f; 0f; 0f |]; [| 0f; 1f; 0f |] |]

            Expect.floatClose Accuracy.veryHigh b.WithSum 0.5 "cos(mix, sum)"
            Expect.equal b.WithComponents[1] 0.0 "orthogonal component"
            Expect.floatClose Accuracy.veryHigh b.BestSingle (1.0 / sqrt 2.0) "best single"
            Expect.floatClose Accuracy.veryHigh b.Gain (0.5 - 1.0 / sqrt 2.0) "negative gain"

            Expect.throwsT<ArgumentException> (fun () -> Clustering.additivity [| 1f |] [||] |> ignore) "no component"

            Expect.throwsT<ArgumentException>
                (fun () -> Clustering.additivity [| 1f |] [| [| 1f; 2f |] |] |> ignore)
                "length"
        }
    ]
