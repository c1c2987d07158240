module LLGBM.Tests.ContinuationScorerTests

open Expecto
open LLGBM.Evaluation
open LLGBM.Tests.TestModels
open LLGBM.Tests.EvaluationFixtures

/// Requests of unequal context and continuation lengths over the micro vocabulary.
let private requests = [
    [ 3; 17; 60; 5; 42 ], [ 7 ]
    [ 9 ], [ 1; 2; 3; 4 ]
    [ 33; 1; 8 ], [ 50; 50 ]
    [ 12; 40; 7; 7; 2; 63; 30 ], [ 0; 62; 5 ]
    [ 20; 21 ], [ 22 ]
    [ 63 ], [ 10; 11; 12; 13; 14; 15 ]
    [ 5; 5; 5; 5 ], [ 6; 6 ]
]

let private asRequests (pairs: (int list * int list) list) =
    pairs
    |> List.map (fun (c, k) -> ContinuationRequest(ResizeArray c, ResizeArray k))
    |> ResizeArray

[<Tests>]
let tests =
    testList "ContinuationScorer" [
        test "LogLikelihoods: equal one unpadded forward pass per request (log-softmax, summed over the continuation)" {
            use model = micro 51L
            let expected = requests |> List.map (fun (c, k) -> naiveLogLikelihood model c k)

            for padding in [ PaddingSide.Right; PaddingSide.Left ] do
                for batchSize in [ 1; 3; 7 ] do
                    let actual =
                        ContinuationScorer.LogLikelihoods(evaluated model, asRequests requests, batchSize, padding)

                    List.zip expected (List.ofArray actual)
                    |> List.iteri (fun i (e, a) ->
                        Expect.floatClose
                            { absolute = 1e-4; relative = 1e-5 }
                            a
                            e
                            $"request {i}, {padding} padding, batch {batchSize}")
        }

        test "LogLikelihoods: the padding side and the batch size leave the scores unchanged" {
            use model = micro 52L

            let score padding batchSize =
                ContinuationScorer.LogLikelihoods(evaluated model, asRequests requests, batchSize, padding)

            let reference = score PaddingSide.Right 1

            for (padding, batchSize) in
                [
                    PaddingSide.Left, 1
                    PaddingSide.Left, 7
                    PaddingSide.Right, 7
                    PaddingSide.Left, 2
                ] do
                let other = score padding batchSize

                Array.iteri2
                    (fun i a b -> Expect.floatClose { absolute = 1e-5; relative = 1e-6 } b a $"request {i}")
                    reference
                    other
        }

        test "LogLikelihoods: progress counts requests after each batch" {
            use model = micro 53L
            let reports = ResizeArray()

            ContinuationScorer.LogLikelihoods(
                evaluated model,
                asRequests requests,
                3,
                PaddingSide.Right,
                fun finished total -> reports.Add((finished, total))
            )
            |> ignore

            Expect.equal (List.ofSeq reports) [ (3, 7); (6, 7); (7, 7) ] "reports"
        }

        test
            "LogLikelihoods: an empty context or continuation, an id outside the vocabulary or a zero batch is an error" {
            use model = micro 54L

            let fails pairs batchSize =
                TestModels.errorMessage<LLGBM.LlgbmException>(fun () ->
                    ContinuationScorer.LogLikelihoods(evaluated model, asRequests pairs, batchSize)
                    |> ignore)

            Expect.stringContains (fails [ [ 1 ], [ 2 ]; [], [ 3 ] ] 2) "request 1" "empty context"
            Expect.stringContains (fails [ [ 1 ], [] ] 2) "request 0" "empty continuation"
            Expect.stringContains (fails [ [ 1 ], [ 64 ] ] 2) "64" "outside the vocabulary"
            Expect.stringContains (fails [ [ 1 ], [ 2 ] ] 0) "batch size" "zero batch"
            Expect.isEmpty (ContinuationScorer.LogLikelihoods(evaluated model, asRequests [], 4)) "no requests"
        }
    ]
