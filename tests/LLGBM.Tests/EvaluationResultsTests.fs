module LLGBM.Tests.EvaluationResultsTests

open System.IO
open System.Text.Json
open Expecto
open LLGBM.Evaluation
open LLGBM.Tests.SafetensorsTests.Kit

let private results = [|
    TaskEvaluationTests.sample
    TaskEvaluationTests.make "arith-add-3" null "instructed" 4 4 null
|]

[<Tests>]
let tests =
    testList "EvaluationResults" [
        test "Write/Read: a JSON array, one object per result, read back equal; no temporary file left" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "results", "eval.json")
                EvaluationResults.Write(path, results)
                use doc = JsonDocument.Parse(File.ReadAllText path)
                Expect.equal (doc.RootElement.GetArrayLength()) 2 "two objects"

                Expect.equal
                    [
                        for o in doc.RootElement.EnumerateArray() -> o.GetProperty("format").GetString()
                    ]
                    [ "bare"; "instructed" ]
                    "formats"

                Expect.equal (List.ofSeq (EvaluationResults.Read path)) (List.ofArray results) "round trip"
                Expect.equal (Directory.GetFiles(Path.GetDirectoryName path)) [| path |] "only the results file")
        }

        test "ToJson: the same array as the file" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "eval.json")
                EvaluationResults.Write(path, results)
                Expect.equal (EvaluationResults.ToJson results) (File.ReadAllText path) "same text")
        }

        test "Read: a file that is not an array of results is a clear error naming it" {
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "bad.json")
                File.WriteAllText(path, "{\"task\": 1")

                let message =
                    TestModels.errorMessage<LLGBM.LlgbmException>(fun () -> EvaluationResults.Read path |> ignore)

                Expect.stringContains message path "names the file")
        }
    ]
