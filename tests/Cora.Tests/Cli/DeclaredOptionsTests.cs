using System.Reflection;
using Cora.Cli;
using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Runtime;
using Microsoft.ML.Cora.Training;

namespace Cora.Tests;

/// <summary>Each option is declared once (<see cref="OptionAttribute"/>): the CLI's flags, help, defaults and errors come from it.</summary>
[TestClass]
public class DeclaredOptionsTests
{
    private static readonly Type[] Records = { typeof(TrainingOptions), typeof(CoraModelOptions), typeof(QueryGeneratorOptions), typeof(MatrixFactorizationOptions) };

    private static IEnumerable<(Type type, PropertyInfo prop, OptionAttribute a)> Declared() =>
        Records.SelectMany(t => t.GetProperties().Select(p => (t, p, a: p.GetCustomAttribute<OptionAttribute>())).Where(x => x.a is not null).Select(x => (x.t, x.p, x.a!)));

    [TestMethod]
    public void EveryDeclaredOptionIsAFlagOfTrainWithItsHelpAndEveryRangeErrorNamesIt()
    {
        var (_, help, _) = CliTests.Cli("train", "--help");
        var flags = Declared().Where(d => d.prop.Name != nameof(MatrixFactorizationOptions.Seed) || d.type == typeof(TrainingOptions)).ToList();
        Assert.AreEqual(flags.Count, flags.Select(d => d.a.Flag).Distinct().Count(), "no flag declared twice");
        var p = Synthetic.Paths;
        using var dir = TestPaths.Temp();
        foreach (var (type, prop, a) in flags)
        {
            StringAssert.Contains(help, a.Flag, $"{type.Name}.{prop.Name}");
            StringAssert.Contains(help, a.Help[..Math.Min(30, a.Help.Length)], $"{type.Name}.{prop.Name}: help from the declaration");
            if (double.IsNaN(a.Min)) continue;
            string below = prop.PropertyType == typeof(double) || prop.PropertyType == typeof(double?) ? (a.MinExclusive ? a.Min : a.Min - 0.5).ToString(System.Globalization.CultureInfo.InvariantCulture)
                : ((long)a.Min - 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
            var (code, _, err) = CliTests.Cli("train", "--train", p.Train, "--valid", p.Valid, "--items", p.Items, "--method", "mf", "--out", dir["m.zip"], a.Flag, below);
            Assert.AreEqual(2, code, $"{a.Flag} {below}: {err}");
            StringAssert.StartsWith(err, $"error: {a.Flag}: {below} is out of range", $"{a.Flag} {below}");
        }
    }

    [TestMethod]
    public void DefaultsAreTheRecordsOwnAndErrorsMapBackToFlags()
    {
        var options = new DeclaredOptions(typeof(TrainingOptions));
        var cmd = new System.CommandLine.RootCommand();
        options.AddTo(cmd);
        var none = options.Apply(new TrainingOptions(), cmd.Parse(Array.Empty<string>()));
        Assert.AreEqual(new TrainingOptions(), none, "nothing given: the record's defaults");
        var some = options.Apply(new TrainingOptions(), cmd.Parse(new[] { "--lr", "0.0005", "--epochs", "3" }));
        Assert.AreEqual(new TrainingOptions { LearningRate = 5e-4, Epochs = 3 }, some);

        // A named recipe: what is not given stays the recipe's, what is given wins.
        var cpu = TrainingOptions.Presets["cpu-2h"];
        Assert.AreEqual(cpu, options.ApplyGiven(TrainingOptions.Presets["cpu-2h"], cmd.Parse(Array.Empty<string>())));
        Assert.AreEqual(cpu with { BatchSize = 8, Seed = 1 }, options.ApplyGiven(TrainingOptions.Presets["cpu-2h"], cmd.Parse(new[] { "--batch-size", "8", "--seed", "1" })));
        Assert.IsTrue(TrainingOptions.Presets.Values.All(o => !o.Validate().Any() && o.MaxMinutes is > 0 and <= 110 && o.MinLearningRate > 0), "every recipe is valid and time-limited");
        Assert.AreNotSame(TrainingOptions.Presets["cpu-2h"], TrainingOptions.Presets["cpu-2h"], "a new instance each time");

        var gen = new DeclaredOptions(typeof(QueryGeneratorOptions), overridesOnly: true);
        var gcmd = new System.CommandLine.RootCommand();
        gen.AddTo(gcmd);
        Assert.AreEqual(QueryGeneratorOptions.Compact, gen.Apply(QueryGeneratorOptions.Compact, gcmd.Parse(Array.Empty<string>())), "overrides leave the preset");
        Assert.AreEqual(QueryGeneratorOptions.Compact with { NumLayers = 3 }, gen.Apply(QueryGeneratorOptions.Compact, gcmd.Parse(new[] { "--generator-layers", "3" })));

        Assert.AreEqual("--lr", DeclaredOptions.FlagOf(typeof(CoraTrainer.Options), "Training.LearningRate"));
        Assert.AreEqual("--cf-token-rms", DeclaredOptions.FlagOf(typeof(CoraTrainer.Options), "Model.QueryGenerator.CfTokenRms"));
        Assert.AreEqual("--mf-dim", DeclaredOptions.FlagOf(typeof(CoraTrainer.Options), "MatrixFactorization.EmbeddingDim"));
        Assert.AreEqual("--device", DeclaredOptions.FlagOf(typeof(CoraTrainer.Options), "Device"));
        Assert.AreEqual("ItemTitles", DeclaredOptions.FlagOf(typeof(CoraTrainer.Options), "ItemTitles"), "no flag: the option's own name");
        // The library checks the declared range itself (ML.NET users get the same message with the option's name).
        var e = new TrainingOptions { LearningRate = 0 }.Validate("Training.").Single();
        Assert.AreEqual("Training.LearningRate", e.Option);
        StringAssert.Contains(e.Problem, "above 0 to 10");
    }
}
