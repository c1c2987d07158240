module LLGBM.Tests.DeltaQualityTests

open Expecto
open LLGBM
open LLGBM.Algebra
open LLGBM.Algebra.DeltaQuality
open LLGBM.Tests.TestModels

let private point task domain step final (v: float32 list) = {
    Task = task
    Domain = domain
    Step = step
    Final = final
    Vector = Array.ofList v
}

/// Tasks a1, a2 (domain A) and b1, b2 (domain B) with two checkpoints each (step 2 final), and a mixture of a1 and b1.
let private points = [|
    point "a1" "A" 1 false [ 1f; 0.1f; 0f ]
    point "a1" "A" 2 true [ 1f; 0.2f; 0f ]
    point "a2" "A" 1 false [ 0.9f; -0.1f; 0.1f ]
    point "a2" "A" 2 true [ 1f; 0f; 0.3f ]
    point "b1" "B" 1 false [ 0.1f; 1f; 0f ]
    point "b1" "B" 2 true [ 0f; 1f; 0.2f ]
    point "b2" "B" 1 false [ -0.2f; 1f; 0f ]
    point "b2" "B" 2 true [ 0.5f; 1f; 0.5f ]
    point "m" "mixture" 1 false [ 1f; 1f; 0f ]
    point "m" "mixture" 2 true [ 1f; 2f; 1f ]
|]

let private representation = {
    Name = "test"
    Description = "hand-made"
    Points = points
}

let private mixtures = [|
    {
        Name = "m"
        Components = [| "a1"; "b1" |]
    }
    {
        Name = "gone"
        Components = [| "a1"; "c9" |]
    }
|]

let private cos (a: float32[]) (b: float32[]) =
    let dot =
        Array.fold2 (fun s (x: float32) (y: float32) -> s + float x * float y) 0.0 a b

    dot
    / sqrt (
        Array.sumBy (fun x -> float x * float x) a
        * Array.sumBy (fun x -> float x * float x) b
    )

[<Tests>]
let tests =
    testList "DeltaQuality" [
        test "silhouettes: every checkpoint, then final checkpoints only, mixtures left out" {
            let rows = silhouettes mixtures representation
            Expect.equal rows.Length 2 "two levels"
            let checkpoint, task = rows[0], rows[1]
            Expect.equal checkpoint.Level "checkpoint" "first level"
            Expect.equal checkpoint.Points 8 "8 checkpoints of non-mixture tasks"
            Expect.sequenceEqual checkpoint.Domains [ "A"; "B" ] "domains"
            let nonMixture = points[0..7]

            let wanted =
                ClusteringTests.naiveSilhouette
                    Clustering.cosineDistance
                    (nonMixture |> Array.map _.Vector)
                    (nonMixture |> Array.map _.Domain)

            Expect.floatClose Accuracy.veryHigh checkpoint.Silhouette wanted "checkpoint-level silhouette"
            Expect.equal task.Level "task" "second level"
            Expect.equal task.Points 4 "one final checkpoint per task"
            let finals = nonMixture |> Array.filter _.Final

            let wantedTask =
                ClusteringTests.naiveSilhouette
                    Clustering.cosineDistance
                    (finals |> Array.map _.Vector)
                    (finals |> Array.map _.Domain)

            Expect.floatClose Accuracy.veryHigh task.Silhouette wantedTask "task-level silhouette"

            let samples =
                Clustering.silhouetteSamplesOfDistances
                    (Clustering.distanceMatrix Clustering.cosineDistance (nonMixture |> Array.map _.Vector))
                    (nonMixture |> Array.map _.Domain)

            Expect.equal checkpoint.PerDomain[0].Points 4 "domain A points"
            Expect.floatClose Accuracy.veryHigh checkpoint.PerDomain[0].Silhouette (Array.average samples[0..3]) "A"
            Expect.floatClose Accuracy.veryHigh checkpoint.PerDomain[1].Silhouette (Array.average samples[4..7]) "B"
        }

        test "additivity: final checkpoints of a covered mixture; a mixture without adapters is skipped" {
            let rows = additivityRows mixtures representation
            Expect.equal rows.Length 1 "only m is covered"
            let row = rows[0]
            Expect.equal row.Mixture "m" "mixture"
            Expect.sequenceEqual row.Components [ "a1"; "b1" ] "components"
            let mix, a1, b1 = points[9].Vector, points[1].Vector, points[5].Vector
            let sum = Array.map2 (+) a1 b1
            Expect.floatClose Accuracy.high row.WithSum (cos mix sum) "cos(mix, a1 + b1)"
            Expect.floatClose Accuracy.high row.WithComponents[0] (cos mix a1) "cos(mix, a1)"
            Expect.floatClose Accuracy.high row.WithComponents[1] (cos mix b1) "cos(mix, b1)"
            Expect.floatClose Accuracy.high row.Gain (cos mix sum - max (cos mix a1) (cos mix b1)) "gain"
            let r = report mixtures [| representation |]
            Expect.sequenceEqual r.SkippedMixtures [ "gone" ] "skipped"
            Expect.equal r.Silhouettes.Length 2 "two silhouette rows"
            Expect.equal r.Representations[0].Dimension 3 "dimension"
        }

        test "a single domain is an error naming the representation" {
            let one = {
                representation with
                    Points = points |> Array.filter (fun p -> p.Domain <> "B")
            }

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> silhouettes mixtures one |> ignore))
                "test (checkpoint): the silhouette needs adapters of at least 2 domains"
                "message"
        }
    ]
