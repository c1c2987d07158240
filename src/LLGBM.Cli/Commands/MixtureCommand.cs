using System.CommandLine;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using LLGBM.Algebra;
using LLGBM.Experiments;
using Spectre.Console;

namespace LLGBM.Cli.Commands;

/// <summary>
/// <c>llgbm mixture</c>: compositionality on a two-task mixture (<see cref="MixtureExperiment"/>): the mixture's
/// teacher, generated adapters, the two-stage decoder on summed deltas and merges of the component teachers, scored on
/// the mixture and on each component, with the additivity of their deltas.
/// </summary>
public static class MixtureCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var baseModel = new Option<string>("--base")
        {
            Description = "Base checkpoint directory (with its tokenizer).",
            DefaultValueFactory = _ => RunsLayout.Default.Base,
        };
        var tasks = new Option<string>("--tasks")
        {
            Description = "The suite root holding the component tasks.",
            DefaultValueFactory = _ => RunsLayout.Default.Suite,
        };
        var teachers = new Option<string>("--teachers")
        {
            Description = "The teacher pool of the component tasks.",
            DefaultValueFactory = _ => RunsLayout.Default.Teachers,
        };
        var deltas = new Option<string>("--deltas")
        {
            Description = "The pool's delta cache (generic probes, default spec).",
            DefaultValueFactory = _ => RunsLayout.Default.Deltas,
        };
        var mixtureTasks = new Option<string>("--mixture-tasks")
        {
            Description = "The root holding the mixture's task directory (llgbm tasks mix).",
            DefaultValueFactory = _ => RunsLayout.Default.MixtureTasks,
        };
        var mixtureTeachers = new Option<string>("--mixture-teachers")
        {
            Description = "The pool holding the mixture's teacher (llgbm teachers train --tasks MIXTURE-TASKS --task NAME).",
            DefaultValueFactory = _ => RunsLayout.Default.MixtureTeachers,
        };
        var mixture = new Option<string>("--mixture") { Description = "The mixture task's name, e.g. mix-add-1+upper.", Required = true };
        var generators = new Option<string[]>("--generator")
        {
            Description = "A generator run that generates an adapter from prompts of both tasks (repeatable).",
            AllowMultipleArgumentsPerToken = true,
        };
        var twoStage = new Option<string?>("--two-stage")
        {
            Description = "A two-stage generator run whose decoder is applied to δ̂_A + δ̂_B and to the teachers' δ_A + δ_B.",
        };
        var encodings = new Option<string>("--encodings")
        {
            Description = "Encoding cache directory.",
            DefaultValueFactory = _ => RunsLayout.Default.Encodings,
        };
        var limit = new Option<int>("--limit")
        {
            Description = "Test examples scored per component (the mixture's score pools both).",
            DefaultValueFactory = _ => 100,
        };
        var conditions = new Option<int>("--conditions") { Description = "Conditions (prompt batches) per generated method.", DefaultValueFactory = _ => 2 };
        var seed = new Option<long>("--seed") { Description = "Seed of the conditions.", DefaultValueFactory = _ => 0 };
        var density = new Option<double>("--density") { Description = "TIES's trim density.", DefaultValueFactory = _ => Merge.DefaultDensity };
        var output = new Option<string?>("--out") { Description = "Write the result to this JSON file." };
        var json = new Option<bool>("--json") { Description = "Print the JSON result instead of the table." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var command = new Command(
            "mixture",
            "Compositionality on a two-task mixture A + B: scores the base model, each component's teacher, the teacher trained on the mixture, " +
            "adapters generated from prompts of both tasks, the two-stage decoder on δ̂_A + δ̂_B and on the teachers' δ_A + δ_B, and the sum, " +
            "average and TIES merge of the two teachers, on the mixture and on each component, " +
            "with each adapter's delta compared to δ_A + δ_B (additivity) and to the mixture teacher's.")
        {
            baseModel, tasks, teachers, deltas, mixtureTasks, mixtureTeachers, mixture, generators, twoStage, encodings, limit, conditions, seed, density,
            output, json, device,
        };
        CommandAction.Set(command, parse =>
        {
            var settings = new MixtureExperimentSettings
            {
                Base = parse.GetValue(baseModel)!,
                Tasks = parse.GetValue(tasks)!,
                Teachers = parse.GetValue(teachers)!,
                Deltas = parse.GetValue(deltas)!,
                MixtureTasks = parse.GetValue(mixtureTasks)!,
                MixtureTeachers = parse.GetValue(mixtureTeachers)!,
                Mixture = parse.GetValue(mixture)!,
                Generators = parse.GetValue(generators) ?? [],
                TwoStage = parse.GetValue(twoStage),
                Encodings = parse.GetValue(encodings)!,
                Limit = parse.GetValue(limit),
                Conditions = parse.GetValue(conditions),
                Seed = parse.GetValue(seed),
                Density = parse.GetValue(density),
                Device = TorchChoices.Device(parse.GetValue(device)!),
            };
            var err = CommandAction.Err(parse);
            var result = MixtureExperiment.Run(settings, line => err.WriteLine($"[mixture] {line}"));
            var text = MixtureResultJson.Of(result).ToJsonString(new JsonSerializerOptions
            {
                WriteIndented = true,
                NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
                Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            });
            return CommandAction.WriteResult(parse, output, json, text, o => WriteTable(o, result));
        });
        return command;
    }

    static string F(double x) => double.IsNaN(x) ? "" : x.ToString("F3", CultureInfo.InvariantCulture);

    static void WriteTable(TextWriter o, MixtureExperimentResult result)
    {
        var table = new Table().AddColumns("method", "mixture", result.First, result.Second, "cos(δ, δ_A + δ_B)", "cos(δ, δ_mix teacher)", "n");
        foreach (var m in result.Methods)
        {
            var deltas = m.Deltas.OfType<DeltaScores>().ToList();
            table.AddRow(
                Markup.Escape(m.Method),
                F(MixtureResultJson.Mean([.. m.Scores.Select(x => x.Mixture)])),
                F(MixtureResultJson.Mean([.. m.Scores.Select(x => x.First)])),
                F(MixtureResultJson.Mean([.. m.Scores.Select(x => x.Second)])),
                deltas.Count == 0 ? "" : F(deltas.Average(d => d.CosineWithSum)),
                deltas.Count == 0 ? "" : F(deltas.Average(d => d.CosineWithMixtureTeacher)),
                $"{m.Scores.Count} × {m.Scores[0].CountFirst + m.Scores[0].CountSecond}");
        }
        CommandAction.Write(o, table);
        o.WriteLine(
            FormattableString.Invariant(
                $"{result.Settings.Mixture}: {result.First} + {result.Second}, {result.Methods.Count} methods in {result.Seconds:F1} s"));
    }
}
