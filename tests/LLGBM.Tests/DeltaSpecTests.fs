module LLGBM.Tests.DeltaSpecTests

open Expecto
open LLGBM
open LLGBM.Delta

[<Tests>]
let tests =
    testList "DeltaSpec" [
        test "the default is the final-norm state, last token, no projection, 256 tokens" {
            let spec = DeltaSpec.Default
            Expect.isNull spec.Layers "layers"
            Expect.equal spec.Pooling DeltaPooling.LastToken "pooling"
            Expect.isFalse spec.ProjectionDim.HasValue "projection"
            Expect.equal spec.MaxProbeLength 256 "max length"
            Expect.equal (spec.Key()) "layers=final;combine=concat;pool=last;proj=none;maxlen=256" "key"
        }

        test "Key tells every setting apart and equal specs share a key" {
            let specs = [
                DeltaSpec()
                DeltaSpec(Layers = [| 1; -1 |])
                DeltaSpec(Layers = [| 1; -1 |], Combination = LayerCombination.Average)
                DeltaSpec(Pooling = DeltaPooling.MeanOverRealTokens)
                DeltaSpec(ProjectionDim = 8)
                DeltaSpec(ProjectionDim = 8, ProjectionSeed = 1L)
                DeltaSpec(MaxProbeLength = 64)
            ]

            let keys = specs |> List.map (fun s -> s.Key())
            Expect.equal (List.distinct keys).Length specs.Length "distinct"
            Expect.equal (DeltaSpec(Layers = [| 1; -1 |]).Key()) (keys[1]) "equal specs"
        }

        test "Validate and ParseLayers reject bad values" {
            Expect.throwsT<LlgbmException> (fun () -> DeltaSpec(Layers = [||]).Validate() |> ignore) "empty layers"
            Expect.throwsT<LlgbmException> (fun () -> DeltaSpec(ProjectionDim = 0).Validate() |> ignore) "projection"
            Expect.throwsT<LlgbmException> (fun () -> DeltaSpec(MaxProbeLength = 0).Validate() |> ignore) "length"
            Expect.sequenceEqual (DeltaSpec.ParseLayers "2, -1") [ 2; -1 ] "parse"
            Expect.throwsT<LlgbmException> (fun () -> DeltaSpec.ParseLayers "a" |> ignore) "not a number"
        }
    ]
