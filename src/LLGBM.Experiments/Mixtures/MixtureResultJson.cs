using System.Text.Json.Nodes;

namespace LLGBM.Experiments;

/// <summary>
/// The JSON of a mixture experiment (<c>ROOT/mixtures/NAME.json</c>): the mixture, its components, the teachers used,
/// the settings, and per method the mean accuracy on the mixture and on each component (with the sample standard
/// deviation over conditions), each condition's scores, and the mean of its delta scores.
/// </summary>
public static class MixtureResultJson
{
    /// <summary>The mean of <paramref name="values"/>.</summary>
    public static double Mean(IReadOnlyList<double> values) => values.Count == 0 ? double.NaN : values.Average();

    /// <summary>The sample standard deviation of <paramref name="values"/> (0 for fewer than two).</summary>
    public static double Std(IReadOnlyList<double> values)
    {
        if (values.Count < 2)
            return 0;
        var mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
    }

    /// <summary>The result as JSON.</summary>
    public static JsonObject Of(MixtureExperimentResult result)
    {
        var s = result.Settings;
        JsonObject Accuracy(IReadOnlyList<MixtureScores> scores, Func<IReadOnlyList<double>, double> f) => new()
        {
            ["mixture"] = f([.. scores.Select(x => x.Mixture)]),
            ["first"] = f([.. scores.Select(x => x.First)]),
            ["second"] = f([.. scores.Select(x => x.Second)]),
        };
        JsonObject? Delta(IReadOnlyList<DeltaScores?> deltas)
        {
            var present = deltas.OfType<DeltaScores>().ToList();
            if (present.Count == 0)
                return null;
            double M(Func<DeltaScores, double> f) => Mean([.. present.Select(f)]);
            return new JsonObject
            {
                ["cos_sum"] = M(d => d.CosineWithSum),
                ["cos_first"] = M(d => d.CosineWithFirst),
                ["cos_second"] = M(d => d.CosineWithSecond),
                ["gain"] = M(d => d.Gain),
                ["cos_mixture_teacher"] = M(d => d.CosineWithMixtureTeacher),
                ["norm"] = M(d => d.Norm),
            };
        }
        var methods = new JsonArray();
        foreach (var m in result.Methods)
            methods.Add(new JsonObject
            {
                ["method"] = m.Method,
                ["group"] = m.Group,
                ["description"] = m.Description,
                ["accuracy"] = Accuracy(m.Scores, Mean),
                ["std"] = Accuracy(m.Scores, Std),
                ["delta"] = Delta(m.Deltas),
                ["runs"] = new JsonArray([.. m.Scores.Zip(m.Deltas, (x, d) => (JsonNode)new JsonObject
                {
                    ["mixture"] = x.Mixture,
                    ["first"] = x.First,
                    ["second"] = x.Second,
                    ["correct_first"] = x.CorrectFirst,
                    ["n_first"] = x.CountFirst,
                    ["correct_second"] = x.CorrectSecond,
                    ["n_second"] = x.CountSecond,
                    ["cos_sum"] = d?.CosineWithSum,
                    ["cos_mixture_teacher"] = d?.CosineWithMixtureTeacher,
                })]),
            });
        return new JsonObject
        {
            ["mixture"] = s.Mixture,
            ["first"] = result.First,
            ["second"] = result.Second,
            ["limit"] = s.Limit,
            ["conditions"] = s.Conditions,
            ["seed"] = s.Seed,
            ["density"] = s.Density,
            ["teachers"] = new JsonArray([.. result.Teachers.Select(t => (JsonNode)new JsonObject
            {
                ["task"] = t.Task,
                ["step"] = t.Step,
                ["adapter"] = t.Adapter,
            })]),
            ["generators"] = new JsonArray([.. s.Generators.Select(g => (JsonNode)JsonValue.Create(g)!)]),
            ["two_stage"] = s.TwoStage,
            ["methods"] = methods,
            ["seconds"] = result.Seconds,
        };
    }
}
