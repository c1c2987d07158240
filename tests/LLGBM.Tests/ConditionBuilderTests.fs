module LLGBM.Tests.ConditionBuilderTests

open System.Security.Cryptography
open System.Text
open Expecto
open LLGBM
open LLGBM.Conditioning
open LLGBM.Tasks
open LLGBM.Tests.TestModels
open LLGBM.Tests.TestEncoders

/// A generation task `name` whose training split has n distinct prompts "name: question i" with answers "answer i".
let private task (name: string) (n: int) =
    let spec = TaskSpec(Name = name, Domain = "test", Kind = TaskKind.Generation)

    let train = [|
        for i in 0 .. n - 1 -> TaskExample(Prompt = $"{name}: question {i}", Answer = $"answer {i}")
    |]

    TaskData(spec, train, [||])

let private builder (encoder: ISentenceEncoder) k mode seed =
    ConditionBuilder(encoder, k, mode, seed)

/// The documented seed derivation, computed independently: SplitMix64's first output from the state
/// seed ⊕ (first 8 bytes of SHA-256 of the name, little-endian) ⊕ 0xD1B54A32D192ED03 · (number + 1).
let private derive (seed: int64) (name: string) (number: int64) =
    let hash = SHA256.HashData(Encoding.UTF8.GetBytes name)
    let nameBits = Seq.init 8 (fun i -> uint64 hash[i] <<< (8 * i)) |> Seq.reduce (|||)

    let mutable state =
        uint64 seed ^^^ nameBits ^^^ (0xD1B54A32D192ED03UL * (uint64 number + 1UL))

    state <- state + 0x9E3779B97F4A7C15UL
    let mutable z = state
    z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
    z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
    int64 (z ^^^ (z >>> 31))

[<Tests>]
let build =
    testList "ConditionBuilder.ForStep" [
        test "a condition has K rows, one per distinct prompt of the batch, each that prompt's encoding" {
            use encoder = new RandomEmbeddingEncoder(seed = 3L)
            let data = task "arith" 50

            use condition =
                (builder encoder 8 PromptBatchMode.PromptsOnly 11L).ForStep(data, 0L)

            Expect.equal condition.K 8 "K"
            Expect.equal condition.Encodings.shape [| 8L; 384L |] "[K, D]"
            Expect.equal (List.distinct (List.ofSeq condition.Texts)).Length 8 "K distinct prompts"

            Expect.equal
                (List.ofSeq condition.Texts)
                [ for i in condition.Batch.Indices -> data.Train[i].Prompt ]
                "the drawn examples' prompts, in order"

            let r = rows condition.Encodings

            for i, text in Seq.indexed condition.Texts do
                let alone = (encodeRows encoder [ text ])[0]
                Expect.equal r[i] alone $"row %d{i} encodes prompt %d{i}"

            Expect.isLessThan (cosine r[0] r[1]) 0.9999 "rows differ: not one prompt repeated"
        }
        test "in prompts-with-answers mode each text is the prompt, a space and the answer" {
            let inner = new CountingEncoder("fake", 2)
            let data = task "arith" 20

            use condition =
                (builder inner 4 PromptBatchMode.PromptsWithAnswers 5L).ForStep(data, 3L)

            Expect.equal
                (List.ofSeq condition.Texts)
                [ for i in condition.Batch.Indices -> $"arith: question {i} answer {i}" ]
                "prompt + answer"

            Expect.equal inner.Calls [ List.ofSeq condition.Texts ] "one encoder call with the K texts"
        }
        test
            "multiple choice: the answer text is the right choice's text; a prompt ending in white space gets no extra space" {
            let item = PromptBatchItem(0, "Question: which?\nAnswer:", "blue")
            Expect.equal (ConditionBuilder.TextOf item) "Question: which?\nAnswer: blue" "space added"

            Expect.equal
                (ConditionBuilder.TextOf(PromptBatchItem(0, "047 =\n", "050")))
                "047 =\n050"
                "no space after a newline"

            Expect.equal (ConditionBuilder.TextOf(PromptBatchItem(0, "kqzm ->", null))) "kqzm ->" "prompt only"
        }
        test "each step samples a fresh batch; the same step the same batch" {
            let inner = new CountingEncoder("fake", 2)
            let data = task "arith" 60
            let b = builder inner 4 PromptBatchMode.PromptsOnly 7L

            let indices step =
                use c = b.ForStep(data, step)
                List.ofSeq c.Batch.Indices

            let batches = [ for step in 0L .. 19L -> indices step ]
            Expect.equal (List.distinct (batches |> List.map Set.ofList)).Length 20 "20 steps, 20 different batches"
            Expect.equal (indices 5L) batches[5] "reproducible"
            let other = builder inner 4 PromptBatchMode.PromptsOnly 8L
            use c = other.ForStep(data, 5L)
            Expect.notEqual (List.ofSeq c.Batch.Indices) batches[5] "another experiment seed, another batch"
        }
        test "the step seed follows the documented derivation and differs between tasks" {
            for (seed, name, step) in [ 0L, "add-1", 0L; 7L, "reverse", 123L; -5L, "mix-add-2+reverse", 99999L ] do
                Expect.equal
                    (ConditionBuilder.StepSeed(seed, name, step))
                    (derive seed name step)
                    $"%s{name} step %d{step}"

            Expect.notEqual
                (ConditionBuilder.StepSeed(1L, "add-1", 4L))
                (ConditionBuilder.StepSeed(1L, "add-2", 4L))
                "per task"

            Expect.equal (ConditionBuilder.EvaluationSeed(1L, "add-1")) (derive 1L "add-1" -1L) "evaluation stream"
        }
        test "a condition of one prompt is refused" {
            let inner = new CountingEncoder("fake", 2)

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> builder inner 1 PromptBatchMode.PromptsOnly 0L |> ignore))
                "never a single prompt"
                "K = 1"

            let same =
                PromptBatch(
                    "t",
                    0L,
                    PromptBatchMode.PromptsOnly,
                    [ PromptBatchItem(0, "same", null); PromptBatchItem(1, "same", null) ]
                )

            let message =
                errorMessage<LlgbmException>(fun () ->
                    (builder inner 2 PromptBatchMode.PromptsOnly 0L).Build same |> ignore)

            Expect.stringContains message "1 distinct" "one prompt repeated"
            Expect.isEmpty inner.Calls "nothing encoded"
        }
    ]

[<Tests>]
let forEvaluation =
    testList "ConditionBuilder.ForEvaluation" [
        test "several independent batches per task, reproducibly" {
            let inner = new CountingEncoder("fake", 2)
            let data = task "arith" 40
            let b = builder inner 5 PromptBatchMode.PromptsOnly 2L

            let draw () =
                let conditions = b.ForEvaluation(data, 4)

                let indices =
                    conditions |> Seq.map (fun c -> List.ofSeq c.Batch.Indices) |> List.ofSeq

                for c in conditions do
                    c.Dispose()

                indices

            let batches = draw ()
            Expect.equal batches.Length 4 "4 conditions"
            Expect.equal (List.distinct (batches |> List.map Set.ofList)).Length 4 "all different"

            Expect.isTrue
                (batches |> List.forall (fun b -> b.Length = 5 && (List.distinct b).Length = 5))
                "K distinct each"

            Expect.equal (draw ()) batches "reproducible"
        }
        test "fewer than two evaluation conditions are refused" {
            let b = builder (new CountingEncoder("fake", 2)) 2 PromptBatchMode.PromptsOnly 0L

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> b.ForEvaluation(task "t" 10, 1) |> ignore))
                "at least 2"
                "message"
        }
    ]
