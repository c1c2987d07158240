module LLGBM.Tests.TaskSuiteTests

open System.IO
open Expecto
open LLGBM.Tests.TestModels
open LLGBM.Tasks
open LLGBM.Tests.SafetensorsTests.Kit

let private save (root: string) (directory: string) (name: string) (prompts: string list) =
    let spec = TaskSpec(Name = name, Domain = "d", Kind = TaskKind.Generation)
    let train = [| for p in prompts -> TaskExample(Prompt = p, Answer = "x") |]
    TaskDirectory.Save(Path.Combine(root, directory), TaskData(spec, train, [||]))

let private formatError (load: unit -> 'a) =
    thrown<TaskFormatException>(load >> ignore)

[<Tests>]
let tests =
    testList "TaskSuite.LoadAll" [
        test "loads every task directory, sorted by task name rather than by directory" {
            withTempDir (fun root ->
                save root "1-zeta" "zeta" [ "z" ]
                save root "2-alpha" "alpha" [ "a1"; "a2" ]
                save root (Path.Combine("group", "mid")) "mu" [ "m" ]
                Directory.CreateDirectory(Path.Combine(root, "not-a-task")) |> ignore
                File.WriteAllText(Path.Combine(root, "notes.txt"), "ignored")
                let tasks = TaskSuite.LoadAll root
                Expect.equal [ for t in tasks -> t.Spec.Name ] [ "alpha"; "mu"; "zeta" ] "sorted by name"
                Expect.equal [ for t in tasks -> t.Train.Count ] [ 2; 1; 1 ] "with their examples")
        }
        test "an empty root gives no tasks" { withTempDir (fun root -> Expect.isEmpty (TaskSuite.LoadAll root) "none") }
        test "rejects two directories holding the same task name, naming both" {
            withTempDir (fun root ->
                save root "a" "same" [ "p" ]
                save root "b" "same" [ "q" ]
                let e = formatError (fun () -> TaskSuite.LoadAll root)
                Expect.stringContains e.Message "'same'" "the name"
                Expect.stringContains e.Message (Path.Combine(root, "a")) "first directory"
                Expect.stringContains e.Message (Path.Combine(root, "b")) "second directory")
        }
        test "a malformed task anywhere fails the whole load, naming its file" {
            withTempDir (fun root ->
                save root "good" "good" [ "p" ]
                save root "bad" "bad" [ "p" ]
                File.WriteAllText(Path.Combine(root, "bad", "train.jsonl"), "{\"prompt\": \"p\"}\n")
                let e = formatError (fun () -> TaskSuite.LoadAll root)
                Expect.equal e.File (Path.Combine(root, "bad", "train.jsonl")) "the file"
                Expect.equal e.Line (System.Nullable 1) "the line")
        }
        test "names a missing root" {
            withTempDir (fun root ->
                let missing = Path.Combine(root, "none")
                let e = formatError (fun () -> TaskSuite.LoadAll missing)
                Expect.stringContains e.Message missing "the root")
        }
    ]
