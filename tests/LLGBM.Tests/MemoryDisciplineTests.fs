module LLGBM.Tests.MemoryDisciplineTests

open Expecto
open TorchSharp
open LLGBM.Model
open LLGBM.Tasks
open LLGBM.Evaluation
open LLGBM.Tests.TestModels
open LLGBM.Tests.EvaluationFixtures

/// Tensors alive on this thread (TorchSharp counts them per thread, so parallel tests do not interfere).
let private live () =
    DisposeScopeManager.Statistics.ThreadTotalLiveCount

/// Runs `step` once to warm up (first calls may create lasting state), then `n` more times, and returns the live
/// tensor counts after the warm-up and after the n steps.
let private across (n: int) (step: unit -> unit) =
    step ()
    let before = live ()

    for _ in 1..n do
        step ()

    before, live ()

[<Tests>]
let tests =
    testSequenced
    <| testList "MemoryDiscipline" [
        test "Forward: live tensor count does not grow across passes (padding, cache, hidden states)" {
            use model = micro 1L
            use ids = randomIds 2L 64 2 6
            use mask = longs [ 2L; 6L ] [ 0L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L ]

            let before, after =
                across 5 (fun () ->
                    use _ = torch.no_grad ()

                    use out =
                        model.Forward(ids, ForwardOptions(AttentionMask = mask, OutputHiddenStates = true))

                    use cache = new KvCache(model.Config.NumHiddenLayers)

                    use prefill =
                        model.Forward(ids, ForwardOptions(AttentionMask = mask, Cache = cache))

                    use last = out.LastTokenHidden()
                    ())

            Expect.equal after before "no tensor leaks from Forward"
        }

        test "Training steps: live tensor count does not grow across forward, backward and AdamW steps" {
            use model = micro 3L
            model.train ()
            use ids = randomIds 4L 64 2 8
            use optimizer = torch.optim.AdamW(model.parameters (), 1e-3)

            let before, after =
                across 4 (fun () ->
                    // one dispose scope per training step, as the trainers do
                    use _ = torch.NewDisposeScope()
                    optimizer.zero_grad ()
                    use out = model.Forward(ids, ForwardOptions(Logits = LogitPositions.All))

                    use loss =
                        torch.nn.functional.cross_entropy (out.Logits.reshape (-1L, 64L), ids.reshape (-1L))

                    loss.backward ()
                    optimizer.step () |> ignore)

            Expect.equal after before "no tensor leaks per training step"
        }

        test "Generate: live tensor count does not grow across calls" {
            use model = micro 5L

            let before, after =
                across 3 (fun () ->
                    TextGeneration.Generate(model, [| [| 1; 2; 3 |]; [| 4 |] |], GenerationOptions(MaxNewTokens = 5))
                    |> ignore)

            Expect.equal after before "no tensor leaks from Generate"
        }

        test "TaskEvaluator: live tensor count does not grow across generation and multiple-choice evaluations" {
            use model = micro 6L

            let tasks = [
                task "g" TaskKind.Generation AnswerExtraction.FirstLine [ answered "12+3=" "15"; answered "ab" "c" ]
                task "m" TaskKind.MultipleChoice AnswerExtraction.FirstLine [
                    choice "12+3=" [ "15"; "1" ] "A"
                    choice "x" [ "y"; "zz"; "w" ] "C"
                ]
            ]

            let before, after =
                across 3 (fun () ->
                    for data in tasks do
                        TaskEvaluator.Evaluate(
                            evaluated model,
                            TestTokenizer.tokenizer,
                            data,
                            EvaluationOptions(MaxNewTokens = 4, BatchSize = 2)
                        )
                        |> ignore)

            Expect.equal after before "no tensor leaks from evaluation"
        }
    ]
