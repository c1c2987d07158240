module LLGBM.Tests.DeltaCommandTests

open System.IO
open System.Text.Json
open Expecto
open LLGBM.Checkpoints
open LLGBM.Delta
open LLGBM.Lora
open LLGBM.Model
open LLGBM.Tests.TestModels
open LLGBM.Tests.TestCli
open LLGBM.Tests.SafetensorsTests.Kit

let private everyModule = [
    for layer in 0..1 do
        for name in LoraTarget.All -> layer, name
]

[<Tests>]
let tests =
    testList "DeltaCommand" [
        test "delta --probe-ids prints the library's delta of a saved adapter on a base init checkpoint" {
            withTempDir (fun root ->
                let baseDir = Path.Combine(root, "base")
                let adapterDir = Path.Combine(root, "adapter")
                let idsFile = Path.Combine(root, "ids.json")

                let (code, _, err) =
                    llgbm [ "base"; "init"; "--preset"; "micro"; "--out"; baseDir; "--seed"; "3" ]

                Expect.equal code 0 err

                do
                    use lora = randomLora Qwen2Presets.Micro 8L 4L 0.3 2.0 everyModule
                    PeftAdapter.Save(adapterDir, LoraConfig(Rank = 4, Alpha = 8.0), lora)

                File.WriteAllText(idsFile, "[[1, 2, 3, 4], [5, 6], [7, 8, 9]]")

                let (code, out, err) =
                    llgbm [
                        "delta"
                        "--model"
                        baseDir
                        "--adapter"
                        adapterDir
                        "--probe-ids"
                        idsFile
                        "--json"
                    ]

                Expect.equal code 0 err
                use doc = JsonDocument.Parse out

                let printed = [|
                    for v in doc.RootElement.GetProperty("delta").EnumerateArray() -> v.GetSingle()
                |]

                use model = Qwen2ForCausalLM.FromPretrained baseDir
                model.eval () |> ignore
                let struct (_, lora) = PeftAdapter.Load(adapterDir, model.Config)
                use lora = lora
                let probes = (ProbeSet.LoadIds idsFile).Tokenize null
                use embedder = new DeltaEmbedder(model, probes)
                use expected = embedder.ComputeNoGrad lora
                let values = expected.data<float32>().ToArray()
                Expect.equal printed.Length 32 "width"
                Expect.isGreaterThan (Array.max (Array.map abs values)) 0.0f "non-zero"
                Expect.equal printed values "same values"

                let (code, _, err) =
                    llgbm [
                        "delta"
                        "--model"
                        baseDir
                        "--adapter"
                        adapterDir
                        "--probe-ids"
                        idsFile
                        "--pooling"
                        "max"
                    ]

                Expect.equal code 2 "bad pooling"
                Expect.stringContains err "--pooling" "message")
        }
    ]
