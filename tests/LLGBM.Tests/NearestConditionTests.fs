module LLGBM.Tests.NearestConditionTests

open Expecto
open LLGBM.Algebra
open LLGBM.Tasks

/// A generation task whose every training prompt is `prompt i` with answer `answer i`.
let private task (name: string) (prompt: string) (answer: string) =
    let spec = TaskSpec(Name = name, Domain = "test", Kind = TaskKind.Generation)

    let train = [|
        for i in 0..19 -> TaskExample(Prompt = $"{prompt} {i}", Answer = $"{answer} {i}")
    |]

    TaskData(spec, train, [||])

let private norm (v: float32[]) =
    v |> Array.sumBy (fun x -> float x * float x) |> sqrt

[<Tests>]
let tests =
    testList "NearestCondition" [
        test "NearestCondition.texts joins prompt and answer when the batch carries answers" {
            let t = task "t" "question" "reply"
            let withAnswers = PromptBatches.Sample(t, 2, 1L, PromptBatchMode.PromptsWithAnswers)
            let prompts = PromptBatches.Sample(t, 2, 1L, PromptBatchMode.PromptsOnly)

            Expect.sequenceEqual
                (NearestCondition.texts withAnswers)
                [| for item in withAnswers.Items -> item.Prompt + "\n" + item.Answer |]
                "prompt, newline, answer"

            Expect.sequenceEqual (NearestCondition.texts prompts) prompts.Prompts "prompts alone"
        }

        test "NearestCondition.ngrams counts hashed n-grams and has unit length" {
            let single (text: string) =
                PromptBatch("t", 0L, PromptBatchMode.PromptsOnly, [| PromptBatchItem(0, text, null) |])

            // "ab" with n ≤ 2: the n-grams a, b and ab, one count each (in three buckets of a large table).
            let e = NearestCondition.ngrams 1000003 2 (single "ab")
            let nonZero = e |> Array.filter (fun x -> x <> 0.0f)
            Expect.equal nonZero.Length 3 "three n-grams"

            for x in nonZero do
                Expect.floatClose Accuracy.medium (float x) (1.0 / sqrt 3.0) "1/√3 each"

            // "aa" with n = 1: the unigram a twice, one bucket.
            let a = NearestCondition.ngrams 64 1 (single "aa")
            Expect.equal (a |> Array.filter (fun x -> x <> 0.0f)).Length 1 "one bucket"
            Expect.floatClose Accuracy.high (norm a) 1.0 "unit length"
            Expect.sequenceEqual (NearestCondition.ngrams 64 3 (single "")) (Array.zeroCreate 64) "no characters: zero"
        }

        test "NearestCondition.predictor returns the delta of the nearest library condition" {
            let fruit = task "fruit" "apple banana cherry" "sweet"
            let numbers = task "numbers" "0417 + 0923 =" "1340"
            let deltaFruit = [| 1.0f; 0.0f |]
            let deltaNumbers = [| 0.0f; 1.0f |]

            let library =
                NearestCondition.libraryOfTasks
                    NearestCondition.defaultEmbedding
                    4
                    2
                    7L
                    PromptBatchMode.PromptsWithAnswers
                    [ fruit, deltaFruit; numbers, deltaNumbers ]

            Expect.equal library.Conditions.Length 4 "2 batches per task"
            let predict = NearestCondition.predictor NearestCondition.defaultEmbedding library
            Expect.sequenceEqual (predict library.Conditions[3]) deltaNumbers "a stored condition finds itself"

            let fresh = PromptBatches.Sample(fruit, 4, 99L, PromptBatchMode.PromptsWithAnswers)
            Expect.sequenceEqual (predict fresh) deltaFruit "a new batch of fruit is nearest to fruit"

            let hit =
                NearestCondition.nearest NearestCondition.defaultEmbedding library library.Conditions[0]

            Expect.equal hit.Index 0 "itself"
            Expect.floatClose Accuracy.high hit.Score 1.0 "cos 1"
        }
    ]
