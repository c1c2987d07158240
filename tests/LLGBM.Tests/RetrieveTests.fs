module LLGBM.Tests.RetrieveTests

open Expecto
open FsCheck.FSharp
open LLGBM
open LLGBM.Algebra
open LLGBM.Tests.TestModels

let private library = [
    "east", [| 1.0f; 0.0f |]
    "north", [| 0.0f; 2.0f |]
    "north-east", [| 1.0f; 1.0f |]
    "west", [| -3.0f; 0.0f |]
]

[<Tests>]
let tests =
    testList "Retrieve" [
        test "Retrieve.topK by cosine and by L2, with scores, nearest first" {
            let hits = Retrieve.byCosine 2 [| 2.0f; 1.0f |] library
            Expect.equal (hits |> List.map (fun h -> h.Item)) [ "north-east"; "east" ] "cosine order"
            // cos((2, 1), (1, 1)) = 3 / (√5 √2); cos((2, 1), (1, 0)) = 2 / √5.
            Expect.floatClose Accuracy.high hits[0].Score (3.0 / sqrt 10.0) "score 1"
            Expect.floatClose Accuracy.high hits[1].Score (2.0 / sqrt 5.0) "score 2"
            Expect.equal hits[0].Index 2 "library index"

            let near = Retrieve.byL2 3 [| 0.0f; 1.5f |] library
            Expect.equal (near |> List.map (fun h -> h.Item)) [ "north"; "north-east"; "east" ] "L2 order"
            Expect.floatClose Accuracy.high near[0].Score 0.5 "distance to north"
            Expect.equal (Retrieve.byL2 10 [| 0.0f; 0.0f |] library).Length 4 "k above the library size"
        }

        test "Retrieve.weights: uniform, and softmax of similarities or negated distances over the temperature" {
            let hits = Retrieve.byCosine 2 [| 2.0f; 1.0f |] library
            Expect.sequenceEqual (Retrieve.weights Retrieve.Cosine Retrieve.Uniform hits) [| 0.5; 0.5 |] "uniform"
            let w = Retrieve.weights Retrieve.Cosine (Retrieve.Softmax 0.1) hits
            let e1, e2 = exp (10.0 * 3.0 / sqrt 10.0), exp (10.0 * 2.0 / sqrt 5.0)
            Expect.floatClose Accuracy.high w[0] (e1 / (e1 + e2)) "softmax 1"
            Expect.floatClose Accuracy.high w[1] (e2 / (e1 + e2)) "softmax 2"
            let near = Retrieve.byL2 2 [| 0.0f; 1.5f |] library
            let wl = Retrieve.weights Retrieve.L2 (Retrieve.Softmax 1.0) near
            let d1, d2 = exp -0.5, exp -(sqrt (1.0 + 0.25))
            Expect.floatClose Accuracy.high wl[0] (d1 / (d1 + d2)) "closer weighs more"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () ->
                    Retrieve.weights Retrieve.L2 (Retrieve.Softmax 0.0) near |> ignore))
                "temperature"
                "bad temperature"
        }

        test "Retrieve.topK names a stored delta of the wrong length" {
            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> Retrieve.byCosine 1 [| 1.0f; 0.0f; 0.0f |] library |> ignore))
                "library entry 0 (east) has a delta of length 2, the query 3"
                "length"
        }

        testPropertyWithConfig (Generators.config 80) "retrieving a stored delta returns it first, by cosine and by L2"
        <| Prop.forAll (Arb.fromGen Generators.deltaLibrary) (fun (deltas, index) ->
            let stored = deltas |> Array.mapi (fun i d -> i, d)

            for similarity in [ Retrieve.Cosine; Retrieve.L2 ] do
                let hits = Retrieve.topK similarity deltas.Length deltas[index] stored
                Expect.equal hits.Head.Item index $"{similarity}: itself first"
                Expect.equal hits.Length deltas.Length "everything"

                let scores = hits |> List.map (fun h -> h.Score)

                let sorted =
                    match similarity with
                    | Retrieve.Cosine -> List.sortDescending scores
                    | Retrieve.L2 -> List.sort scores

                Expect.equal scores sorted "nearest first")
    ]
