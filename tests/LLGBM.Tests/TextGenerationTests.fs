module LLGBM.Tests.TextGenerationTests

open System.Collections.Generic
open Expecto
open FsCheck.FSharp
open TorchSharp
open LLGBM.Model
open LLGBM.Tests.TestModels

let private asPrompts (prompts: int[] list) : IReadOnlyList<IReadOnlyList<int>> =
    prompts |> List.map (fun p -> p :> IReadOnlyList<int>) |> ResizeArray :> _

let private generate model (prompts: int[] list) (options: GenerationOptions) =
    TextGeneration.Generate(model, asPrompts prompts, options)

/// A single sequence as ids [1, T].
let private row (tokens: int[]) =
    longs [ 1L; int64 tokens.Length ] (tokens |> Array.map int64 |> List.ofArray)

/// The independent computation: greedy decoding of one prompt alone, re-running a full forward pass without a
/// cache on the whole growing sequence and taking the argmax of the last position's logits.
let private naiveGreedy (model: Qwen2ForCausalLM) (prompt: int[]) (steps: int) =
    use _ = torch.no_grad ()
    let tokens = ResizeArray prompt

    for _ in 1..steps do
        use scope = torch.NewDisposeScope()
        let output = model.Forward(row (tokens.ToArray()), ForwardOptions())
        let last = output.Logits[0, output.Logits.shape[1] - 1L]
        tokens.Add(int (last.argmax().item<int64>()))

    tokens.GetRange(prompt.Length, steps).ToArray()

/// Prompts of unequal length over the micro vocabulary (64 ids).
let private prompts = [
    [| 3; 17; 60; 5; 42 |]
    [| 9 |]
    [| 33; 1; 8 |]
    [| 12; 40; 7; 7; 2; 63; 30 |]
]

/// One model for every case of the batch property.
let private batchModel = lazy (micro 30L)

let private greedy steps = GenerationOptions(MaxNewTokens = steps)

let private sampled temperature seed steps =
    GenerationOptions(MaxNewTokens = steps, Temperature = temperature, Seed = seed)

[<Tests>]
let tests =
    testList "TextGeneration" [
        test "Generate: greedy decoding of a padded batch equals a cache-free loop over each prompt alone" {
            use model = micro 21L
            let steps = 10

            let expected =
                prompts |> List.map (fun p -> naiveGreedy model p steps) |> Array.ofList

            let actual = generate model prompts (greedy steps)
            Expect.equal actual expected "new tokens of every row"
        }

        test "Generate: a row ends right before its first stop token, other rows are unaffected" {
            use model = micro 22L
            let steps = 8
            let naive = prompts |> List.map (fun p -> naiveGreedy model p steps) |> Array.ofList

            // a row whose step-3 token is new in that row and absent from the other rows' output
            let chosen =
                naive
                |> Array.tryFindIndex (fun tokens ->
                    let stopToken = tokens[3]

                    not (Array.contains stopToken tokens[0..2])
                    && naive
                       |> Array.forall (fun other ->
                           obj.ReferenceEquals(other, tokens) || not (Array.contains stopToken other)))

            let r =
                Expect.wantSome chosen "some row has a step-3 token that only it emits, and first at step 3"

            let stopToken = naive[r][3]

            let actual =
                generate model prompts (GenerationOptions(MaxNewTokens = steps, StopTokens = [| stopToken |]))

            Expect.equal (actual[r]) (naive[r][0..2]) $"row {r} stops before token {stopToken}"

            for b in 0 .. prompts.Length - 1 do
                if b <> r then
                    Expect.equal (actual[b]) (naive[b]) $"row {b} runs the full {steps} tokens"
        }

        test "Generate: without stop tokens every row has exactly MaxNewTokens tokens" {
            use model = micro 23L

            for steps in [ 0; 1; 6 ] do
                let actual = generate model prompts (greedy steps)
                Expect.equal actual.Length prompts.Length "one result per prompt"

                for tokens in actual do
                    Expect.equal tokens.Length steps $"MaxNewTokens = {steps}"

                let sampledOut = generate model prompts (sampled 1.0 5L steps)

                for tokens in sampledOut do
                    Expect.equal tokens.Length steps $"MaxNewTokens = {steps} when sampling"
        }

        test "Generate: no prompts give no results" {
            use model = micro 24L
            Expect.isEmpty (generate model [] (greedy 4)) "empty"
        }

        test "Generate: an empty prompt is a clear error" {
            use model = micro 25L

            Expect.throwsT<LLGBM.LlgbmException>
                (fun () -> generate model [ [| 1; 2 |]; [||] ] (greedy 4) |> ignore)
                "empty prompt"
        }

        test "Generate: sampling with the same seed gives the same tokens" {
            use model = micro 26L
            let a = generate model prompts (sampled 1.5 11L 8)
            let b = generate model prompts (sampled 1.5 11L 8)
            Expect.equal a b "same seed"
        }

        test "Generate: sampling at a high temperature depends on the seed" {
            use model = micro 27L
            let first = generate model prompts (sampled 5.0 1L 8)

            let others =
                [ 2L .. 6L ]
                |> List.map (fun seed -> generate model prompts (sampled 5.0 seed 8))

            Expect.exists others (fun other -> other <> first) "some other seed gives other tokens"
        }

        test "Generate: top-k = 1 is greedy at any temperature" {
            use model = micro 28L
            let expected = generate model prompts (greedy 8)

            for temperature in [ 0.5; 1.0; 10.0 ] do
                let actual =
                    generate
                        model
                        prompts
                        (GenerationOptions(MaxNewTokens = 8, Temperature = temperature, TopK = 1, Seed = 3L))

                Expect.equal actual expected $"temperature {temperature}"

                Expect.notEqual
                    (generate model prompts (sampled temperature 3L 8))
                    expected
                    "without top-k it samples other tokens"
        }

        test "Generate: a tiny top-p is greedy" {
            use model = micro 29L
            let expected = generate model prompts (greedy 8)

            for temperature in [ 1.0; 10.0 ] do
                let actual =
                    generate
                        model
                        prompts
                        (GenerationOptions(MaxNewTokens = 8, Temperature = temperature, TopP = 1e-6, Seed = 4L))

                Expect.equal actual expected $"temperature {temperature}"

                Expect.notEqual
                    (generate model prompts (sampled temperature 4L 8))
                    expected
                    "without top-p it samples other tokens"
        }

        test "LeftPad: pads on the left with the pad id and marks real tokens with 1" {
            let struct (ids, mask) =
                TextGeneration.LeftPad(asPrompts [ [| 1; 2; 3 |]; [| 4 |]; [| 5; 6 |] ], 9)

            use ids = ids
            use mask = mask
            Expect.sequenceEqual ids.shape [| 3L; 3L |] "ids shape"
            Expect.sequenceEqual mask.shape [| 3L; 3L |] "mask shape"
            Expect.sequenceEqual (ids.data<int64>().ToArray()) [| 1L; 2L; 3L; 9L; 9L; 4L; 9L; 5L; 6L |] "ids"
            Expect.sequenceEqual (mask.data<int64>().ToArray()) [| 1L; 1L; 1L; 0L; 0L; 1L; 0L; 1L; 1L |] "mask"
        }

        test "LeftPad: sequences of equal length are left as they are" {
            let struct (ids, mask) =
                TextGeneration.LeftPad(asPrompts [ [| 7; 8 |]; [| 0; 63 |] ], 5)

            use ids = ids
            use mask = mask
            Expect.sequenceEqual (ids.data<int64>().ToArray()) [| 7L; 8L; 0L; 63L |] "ids"
            Expect.sequenceEqual (mask.data<int64>().ToArray()) [| 1L; 1L; 1L; 1L |] "mask"
        }

        testPropertyWithConfig
            (Generators.config 20)
            "Forward: last-token logits of a left-padded batch equal each sequence's own"
        <| Prop.forAll (Generators.unequalBatchArb 64) (fun sequences ->
            use _ = torch.no_grad ()
            use scope = torch.NewDisposeScope()
            let model = batchModel.Force()

            let struct (ids, mask) =
                TextGeneration.LeftPad(asPrompts (List.ofArray sequences), 0)

            let batch =
                model.Forward(ids, ForwardOptions(AttentionMask = mask, Logits = LogitPositions.Last))

            sequences
            |> Array.iteri (fun b tokens ->
                let alone = model.Forward(row tokens, ForwardOptions())
                let own = alone.Logits[0, int64 tokens.Length - 1L]
                Expect.isLessThan (maxAbsDiff (batch.Logits[b, 0]) own) 1e-4 $"row {b} of {sequences.Length}"))
    ]
