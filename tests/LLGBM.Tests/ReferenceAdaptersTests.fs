module LLGBM.Tests.ReferenceAdaptersTests

open System.Collections.Generic
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Experiments
open LLGBM.Lora
open LLGBM.Tests.NaiveAlgebra
open LLGBM.Tests.TestModels

/// A set of one rank-1 module per path: ΔW = scale · b aᵀ.
let private rank1 (modules: (string * float32[] * float32[] * float) list) =
    let table = Dictionary<string, LoraModule>()

    for (path, a, b, scale) in modules do
        table[path] <-
            LoraModule.LowRank(
                torch.tensor(a).reshape(1L, int64 a.Length),
                torch.tensor(b).reshape(int64 b.Length, 1L),
                scale
            )

    new LoraSet(table, true)

/// ΔW = scale · b aᵀ, row-major, computed by hand.
let private outer (a: float32[]) (b: float32[]) (scale: float) = [|
    for bi in b do
        for aj in a -> float bi * float aj * scale
|]

let private denseOf (set: LoraSet) (path: string) =
    use w = set.Modules[path].DeltaWeight()
    w.to_type(torch.float64).data<float>().ToArray()

let private frobenius (values: float[]) =
    values |> Array.sumBy (fun v -> v * v) |> sqrt

let private teachers () = [
    rank1 [
        "m.q", [| 1.0f; 2.0f |], [| 1.0f; -1.0f; 0.5f |], 2.0
        "m.v", [| 0.5f |], [| 3.0f; 1.0f |], 1.0
    ]
    rank1 [
        "m.q", [| -1.0f; 0.0f |], [| 2.0f; 1.0f; 1.0f |], 2.0
        "m.v", [| 2.0f |], [| -1.0f; 1.0f |], 1.0
    ]
    rank1 [
        "m.q", [| 0.5f; 0.5f |], [| 0.0f; 4.0f; -2.0f |], 2.0
        "m.v", [| 1.0f |], [| 1.0f; 1.0f |], 1.0
    ]
]

let private factors = [
    "m.q",
    [
        [| 1.0f; 2.0f |], [| 1.0f; -1.0f; 0.5f |]
        [| -1.0f; 0.0f |], [| 2.0f; 1.0f; 1.0f |]
        [| 0.5f; 0.5f |], [| 0.0f; 4.0f; -2.0f |]
    ],
    2.0
    "m.v",
    [
        [| 0.5f |], [| 3.0f; 1.0f |]
        [| 2.0f |], [| -1.0f; 1.0f |]
        [| 1.0f |], [| 1.0f; 1.0f |]
    ],
    1.0
]

[<Tests>]
let tests =
    testList "ReferenceAdapters" [
        test "The mean teacher is the entry-wise mean of the teachers' ΔW, as a dense set" {
            let sets = teachers ()

            try
                use mean = ReferenceAdapters.MeanTeacher(sets, torch.CPU)

                for (path, pairs, scale) in factors do
                    let expected =
                        pairs
                        |> List.map (fun (a, b) -> outer a b scale)
                        |> List.reduce (Array.map2 (+))
                        |> Array.map (fun v -> v / 3.0)

                    Expect.isNotNull mean.Modules[path].Delta $"{path} is dense"
                    expectClose 1e-6 (denseOf mean path) expected $"{path}: mean ΔW"
            finally
                for s in sets do
                    s.Dispose()
        }

        test "The random adapter has, per module, the teachers' mean ‖ΔW‖ and is the same for the same seed" {
            let sets = teachers ()

            try
                use first = ReferenceAdapters.Random(sets, 7L)
                use again = ReferenceAdapters.Random(sets, 7L)
                use other = ReferenceAdapters.Random(sets, 8L)

                for (path, pairs, scale) in factors do
                    let target = pairs |> List.averageBy (fun (a, b) -> frobenius (outer a b scale))

                    Expect.floatClose Accuracy.medium (frobenius (denseOf first path)) target $"{path}: ‖ΔW‖"
                    Expect.equal (denseOf again path) (denseOf first path) $"{path}: same seed, same adapter"
                    Expect.notEqual (denseOf other path) (denseOf first path) $"{path}: another seed, another adapter"
            finally
                for s in sets do
                    s.Dispose()
        }

        test "Reference methods parse from their names, and an unknown name is an error that lists them" {
            for m in ReferenceAdapters.All do
                Expect.equal (ReferenceAdapters.Parse(m.Name())) m (m.Name())

            Expect.equal
                [ for m in ReferenceAdapters.All -> m.Name() ]
                [ "base"; "oracle"; "mean-teacher"; "random" ]
                "the names results files carry"

            let message =
                errorMessage<LlgbmException>(fun () -> ReferenceAdapters.Parse "mean" |> ignore)

            Expect.stringContains message "\"mean\"" "names the bad value"
            Expect.stringContains message "base, oracle, mean-teacher, random" "lists the methods"
        }
    ]
