import django.db.models.deletion
from django.db import migrations, models

import scheduler_sdk.signing


def give_each_executor_a_secret(apps, schema_editor):
    # A callable default on AddField is evaluated once for all existing rows: they would share one secret.
    executor_model = apps.get_model("executors", "Executor")
    for executor in executor_model.objects.filter(secret="").only("pk"):
        executor_model.objects.filter(pk=executor.pk).update(secret=scheduler_sdk.signing.new_secret())


class Migration(migrations.Migration):

    dependencies = [
        ("executors", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="executor",
            name="secret",
            field=models.CharField(default="", editable=False, max_length=128),
            preserve_default=False,
        ),
        migrations.RunPython(give_each_executor_a_secret, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="executor",
            name="secret",
            field=models.CharField(default=scheduler_sdk.signing.new_secret, editable=False, max_length=128),
        ),
        migrations.CreateModel(
            name="SeenNonce",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("nonce", models.CharField(max_length=128)),
                ("seen_at", models.DateTimeField(db_index=True)),
                ("executor", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                               to="executors.executor")),
            ],
            options={
                "db_table": "executor_nonces",
                "constraints": [models.UniqueConstraint(fields=("executor", "nonce"), name="uniq_executor_nonce")],
            },
        ),
    ]
