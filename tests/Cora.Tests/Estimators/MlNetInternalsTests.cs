using Microsoft.ML;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Data;

namespace Cora.Tests;

/// <summary>
/// Fails loudly when a future ML.NET changes an internal that Cora relies on (see MlNetInternals.cs).
/// Save/load, loader registration and cancellation are exercised end to end in EstimatorTests.
/// </summary>
[TestClass]
public class MlNetInternalsTests
{
    [TestMethod]
    public void EveryInternalCoraUsesIsStillThere()
    {
        var info = typeof(MLContext).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().Single().InformationalVersion;
        StringAssert.StartsWith(info, "5.0.", "Cora is tested against Microsoft.ML 5.0.x");
        foreach (var t in new[] { MlNetInternals.VersionInfoType, MlNetInternals.LoadContextType, MlNetInternals.SignatureLoadModelType,
                                  MlNetInternals.LoadableClassAttributeType, MlNetInternals.CancelableType })
            Assert.IsNotNull(t);
        var ml = new MLContext();
        Assert.IsFalse(MlNetInternals.IsCanceled(ml));
        MlNetInternals.CancelExecution(ml);
        Assert.IsTrue(MlNetInternals.IsCanceled(ml));
        Assert.AreSame(ml.ComponentCatalog, MlNetInternals.EnvironmentOf(ml.Model).ComponentCatalog);
        var b = new DataViewSchema.Builder();
        b.AddColumn("Score", NumberDataViewType.Single);
        var shape = MlNetInternals.ShapeOf(b.ToSchema());
        Assert.AreEqual("Score", shape[0].Name);
    }

    [TestMethod]
    public void TheBuildWritesMlNetsLoadableClassAttributeNamingCorasLoader()
    {
        // What build/MlNetLoadableClass.targets adds after the compiler: without it, Model.Load cannot find Cora's loader.
        var attrs = typeof(CoraTransformer).Assembly.GetCustomAttributes(MlNetInternals.LoadableClassAttributeType, false);
        Assert.HasCount(1, attrs, "one [assembly: LoadableClass] in Cora.Estimators");
        var a = attrs[0];
        object? Member(string name) => a.GetType().GetProperty(name)?.GetValue(a) ?? a.GetType().GetField(name)?.GetValue(a);
        Assert.AreEqual(typeof(CoraTransformer), Member("InstanceType"));
        CollectionAssert.Contains((string[])Member("LoadNames")!, CoraTransformer.LoaderSignature);
        CollectionAssert.Contains((Type[])Member("SigTypes")!, MlNetInternals.SignatureLoadModelType);
        // And ML.NET registers it from the assembly, once per catalog, however often it is asked.
        var ml = new MLContext();
        ml.ComponentCatalog.RegisterAssembly(typeof(CoraTransformer).Assembly);
        ml.ComponentCatalog.RegisterAssembly(typeof(CoraTransformer).Assembly);
    }
}
