module LLGBM.Tests.PromptBatchesTests

open Expecto
open FsCheck.FSharp
open LLGBM
open LLGBM.Tasks
open LLGBM.Tests.Generators

/// An independent implementation of the documented draw: SplitMix64 (Steele, Lea and Flood 2014) seeded with the
/// seed's bits, a uniform integer below `bound` by rejection of the top 2^64 mod bound values, and a partial
/// Fisher–Yates shuffle of 0..n-1 whose first k entries are the batch.
module private Reference =
    let splitMix (state: uint64 ref) =
        state.Value <- state.Value + 0x9E3779B97F4A7C15UL
        let mutable z = state.Value
        z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
        z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
        z ^^^ (z >>> 31)

    let below (state: uint64 ref) (bound: uint64) =
        // 2^64 mod bound, computed without 2^64: (2^64 - bound) mod bound.
        let rejected = (0UL - bound) % bound

        let rec draw () =
            let v = splitMix state
            // Accept v when it lies below 2^64 - rejected, i.e. when v <= UInt64.MaxValue - rejected.
            if v > System.UInt64.MaxValue - rejected then
                draw ()
            else
                v % bound

        draw ()

    let batch (n: int) (k: int) (seed: int64) =
        let order = Array.init n id
        let state = ref (uint64 seed)

        for i in 0 .. k - 1 do
            let j = i + int (below state (uint64 (n - i)))
            let t = order[i]
            order[i] <- order[j]
            order[j] <- t

        Array.sub order 0 k |> List.ofArray

let private mcTask =
    let spec = TaskSpec(Name = "mc", Domain = "test", Kind = TaskKind.MultipleChoice)

    let train = [|
        TaskExample(Prompt = "q0", Answer = "B", Choices = [| "no"; "yes" |])
        TaskExample(Prompt = "q1", Answer = "A", Choices = [| "red"; "blue"; "green" |])
        TaskExample(Prompt = "q2", Answer = "C", Choices = [| "1"; "2"; "3" |])
    |]

    TaskData(spec, train, [||])

[<Tests>]
let sample =
    testList "PromptBatches.Sample" [
        testPropertyWithConfig (config 200) "K distinct training examples, their prompts in the order drawn"
        <| Prop.forAll (Arb.fromGen batchCase) (fun (n, k, seed) ->
            let task = numberedTask n
            let batch = PromptBatches.Sample(task, k, seed, PromptBatchMode.PromptsOnly)
            let indices = List.ofSeq batch.Indices
            Expect.equal indices.Length k "K examples"
            Expect.equal (List.distinct indices).Length k "distinct"
            Expect.isTrue (indices |> List.forall (fun i -> i >= 0 && i < n)) "from the training split"
            Expect.equal (List.ofSeq batch.Prompts) [ for i in indices -> $"p{i}" ] "the examples' prompts"
            Expect.isTrue (batch.Items |> Seq.forall (fun item -> isNull item.Answer)) "no answers")
        testPropertyWithConfig (config 100) "matches an independent implementation of the documented draw"
        <| Prop.forAll (Arb.fromGen batchCase) (fun (n, k, seed) ->
            let batch = PromptBatches.Sample(numberedTask n, k, seed)
            Expect.equal (List.ofSeq batch.Indices) (Reference.batch n k seed) "same indices")
        testPropertyWithConfig (config 100) "the same seed gives the same batch"
        <| Prop.forAll (Arb.fromGen batchCase) (fun (n, k, seed) ->
            let task = numberedTask n
            let a = PromptBatches.Sample(task, k, seed)
            let b = PromptBatches.Sample(task, k, seed)
            Expect.equal (List.ofSeq a.Indices) (List.ofSeq b.Indices) "deterministic")
        test "different seeds give different batches" {
            let task = numberedTask 40

            let batches = [
                for seed in 0L .. 49L -> List.ofSeq (PromptBatches.Sample(task, 8, seed).Indices)
            ]

            Expect.equal (List.distinct batches).Length 50 "50 seeds, 50 different batches"
        }
        testPropertyWithConfig (config 30) "every example is reachable: 400 consecutive seeds cover the training split"
        <| Prop.forAll (Arb.fromGen batchCase) (fun (n, k, seed) ->
            let task = numberedTask n

            let seen =
                Seq.init 400 (fun i -> PromptBatches.Sample(task, k, seed + int64 i).Indices)
                |> Seq.concat
                |> Set.ofSeq

            Expect.equal seen (Set.ofList [ 0 .. n - 1 ]) "all indices drawn")
        test "each example is drawn about K/N of the time" {
            // 20 examples, K = 5, 4000 batches: each index is expected 1000 times (binomial sd about 27).
            let task = numberedTask 20
            let counts = Array.zeroCreate 20

            for seed in 0L .. 3999L do
                for i in PromptBatches.Sample(task, 5, seed).Indices do
                    counts[i] <- counts[i] + 1

            for i in 0..19 do
                Expect.isTrue (abs (counts[i] - 1000) < 150) $"index {i} drawn {counts[i]} times"
        }
        test "a batch is not the first K examples" {
            let task = numberedTask 30

            for seed in 0L .. 99L do
                let indices = PromptBatches.Sample(task, 5, seed).Indices
                Expect.notEqual (Set.ofSeq indices) (Set.ofList [ 0..4 ]) $"seed {seed}"
        }
        test "K = N gives a shuffle of the whole split" {
            let batch = PromptBatches.Sample(numberedTask 10, 10, 3L)
            Expect.equal (batch.Indices |> Seq.sort |> List.ofSeq) [ 0..9 ] "every example once"
            Expect.notEqual (List.ofSeq batch.Indices) [ 0..9 ] "not in file order"
        }
        test "with answers: the reference answer, or the text of the right choice" {
            let gen =
                PromptBatches.Sample(numberedTask 6, 6, 11L, PromptBatchMode.PromptsWithAnswers)

            for item in gen.Items do
                Expect.equal (item.Prompt, item.Answer) ($"p{item.Index}", $"a{item.Index}") "generation"

            let mc = PromptBatches.Sample(mcTask, 3, 5L, PromptBatchMode.PromptsWithAnswers)
            let expected = Map [ 0, ("q0", "yes"); 1, ("q1", "red"); 2, ("q2", "3") ]

            for item in mc.Items do
                Expect.equal (item.Prompt, item.Answer) expected[item.Index] "multiple choice"

            Expect.equal mc.Mode PromptBatchMode.PromptsWithAnswers "mode recorded"
            Expect.equal (mc.Task, mc.Seed) ("mc", 5L) "task and seed recorded"
        }
        test "K larger than the training split, or below 1, is a clear error" {
            let e =
                try
                    PromptBatches.Sample(numberedTask 4, 5, 0L) |> ignore
                    failtest "expected an error"
                with :? LlgbmException as e ->
                    e

            Expect.stringContains e.Message "K = 5" "names K"
            Expect.stringContains e.Message "has 4" "names the number available"
            Expect.stringContains e.Message "'gen'" "names the task"
            Expect.throwsT<LlgbmException> (fun () -> PromptBatches.Sample(numberedTask 4, 0, 0L) |> ignore) "K = 0"
        }
    ]

[<Tests>]
let sampleMany =
    testList "PromptBatches.SampleMany" [
        test "gives count batches, batch i drawn with BatchSeed(seed, i)" {
            let task = numberedTask 25
            let batches = PromptBatches.SampleMany(task, 4, 6, 42L)
            Expect.equal batches.Count 6 "count"

            for i in 0..5 do
                let alone = PromptBatches.Sample(task, 4, PromptBatches.BatchSeed(42L, i))
                Expect.equal (List.ofSeq batches[i].Indices) (List.ofSeq alone.Indices) $"batch {i}"
                Expect.equal batches[i].Seed (PromptBatches.BatchSeed(42L, i)) "seed recorded"

            Expect.equal
                (batches |> Seq.map (fun b -> List.ofSeq b.Indices) |> Seq.distinct |> Seq.length)
                6
                "the batches differ"
        }
        testPropertyWithConfig (config 50) "deterministic per seed; derived seeds are distinct"
        <| Prop.forAll (Arb.fromGen batchCase) (fun (n, k, seed) ->
            let task = numberedTask n

            let a =
                PromptBatches.SampleMany(task, k, 5, seed, PromptBatchMode.PromptsWithAnswers)

            let b =
                PromptBatches.SampleMany(task, k, 5, seed, PromptBatchMode.PromptsWithAnswers)

            Expect.equal [ for x in a -> List.ofSeq x.Indices ] [ for x in b -> List.ofSeq x.Indices ] "same batches"
            Expect.equal ([ for x in a -> x.Seed ] |> List.distinct).Length 5 "distinct seeds"

            Expect.isTrue
                (a
                 |> Seq.forall (fun x -> x.Items |> Seq.forall (fun item -> item.Answer = $"a{item.Index}")))
                "answers carried")
        test "count 0 gives no batches; a negative count or a too large K is an error" {
            Expect.isEmpty (PromptBatches.SampleMany(numberedTask 3, 2, 0, 1L)) "none"

            Expect.throwsT<LlgbmException>
                (fun () -> PromptBatches.SampleMany(numberedTask 3, 2, -1, 1L) |> ignore)
                "negative count"

            Expect.throwsT<LlgbmException>
                (fun () -> PromptBatches.SampleMany(numberedTask 3, 4, 2, 1L) |> ignore)
                "K > N"
        }
    ]
